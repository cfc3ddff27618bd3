import { Command } from 'commander';
import { loadFlowFile } from '../flow/config.js';
import { createLogger } from '../flow/run-flow.js';
import { listReviews, parseTake, resolveReview } from '../flow/review.js';
import { table } from './output.js';

const collectFiles = (file: string, files: string[] = []) => [...files, file];
const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

export function reviewCommand(): Command {
  const review = new Command('review').description('conflicts a policy sent to a person: list them, and resolve one in every system of the sync');
  review
    .command('list')
    .description("open review items of a sync (give each direction's flow file)")
    .requiredOption('--config <file>', 'a flow file of the sync (repeat for each direction)', collectFiles)
    .option('--all', 'resolved items too')
    .option('--json', 'machine-readable output')
    .action(async (opts: { config: string[]; all?: boolean; json?: boolean }) => {
      const configs = opts.config.map((f) => loadFlowFile(f));
      const items = await listReviews(configs, Boolean(opts.all), createLogger('review', 'warn'));
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(items, null, 2)}\n`);
        return;
      }
      if (items.length === 0) {
        process.stdout.write(opts.all ? 'no review items\n' : 'no open review items\n');
        return;
      }
      const rows = [['ID', 'STATUS', 'ENTITY', 'KEY', 'FIELD', 'KEPT (OWNER)', 'PROPOSED', 'SINCE']];
      for (const i of items)
        rows.push([
          i.id,
          i.status,
          i.entity,
          i.key,
          i.field,
          `${show(i.keptValue)} (${i.owner})`,
          `${show(i.proposedValue)} (${i.proposer})`,
          i.createdAt.toISOString(),
        ]);
      process.stdout.write(`${table(rows)}\n`);
    });
  review
    .command('resolve')
    .description('choose the value of a review item; it is written into every system of the sync, and not echoed back')
    .argument('<id>', 'the review item (see `trustsync review list`)')
    .requiredOption('--take <choice>', 'local (the value kept, the owner’s), external (the proposed value) or value=<JSON>')
    .requiredOption('--config <file>', 'a flow file of the sync (repeat for each direction)', collectFiles)
    .action(async (id: string, opts: { take: string; config: string[] }) => {
      const take = parseTake(opts.take);
      const configs = opts.config.map((f) => loadFlowFile(f));
      const { item, value, outcomes } = await resolveReview(configs, id, take, createLogger('review', 'warn'));
      process.stdout.write(`${item.id}: ${item.entity} ${item.key} ${item.field} = ${show(value)}\n`);
      process.stdout.write(`${table([['FLOW', 'TABLE', 'WROTE', 'DETAIL'], ...outcomes.map((o) => [o.flow, o.target, o.wrote ? 'yes' : 'no', o.detail])])}\n`);
    });
  return review;
}
