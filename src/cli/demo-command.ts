import { Command } from 'commander';
import { stackEndpoints, stackSettings } from '../stack/settings.js';
import { DEMO_FLOW_FILES, formatSummary, runDemo, type DemoDestination } from '../demo/demo.js';
import { progress, table, optionError } from './output.js';
import { formatExplanation } from '../history/explain.js';
import { runSyncDemo, type SyncDemoResult } from '../demo/sync-demo.js';
import type { Customer } from '../demo/sync.js';

export function demoCommand(): Command {
  return new Command('demo')
    .description(
      'the main job on the local stack: capture a demo shop with Debezium, apply it with trustsync while it changes, and show the destination converging',
    )
    .option('--operations <n>', 'how many source changes to write', '600')
    .option(
      '--to <kind>',
      'the kind of destination: postgres (flows/shop.yaml), mariadb (flows/shop-mariadb.yaml) or http (flows/shop-http.yaml: an example CRM API the demo starts)',
      'postgres',
    )
    .option('--bidirectional', 'instead: two databases (app and crm) kept in sync both ways under the customer policy')
    .action(async (opts: { operations: string; to: DemoDestination; bidirectional?: boolean }) => {
      if (opts.bidirectional) return printSyncDemo(await runSyncDemo(stackSettings(), progress));
      if (!Object.hasOwn(DEMO_FLOW_FILES, opts.to))
        throw optionError(`--to ${opts.to}: not a kind of destination the demo writes`, 'use --to postgres, --to mariadb or --to http');
      const flowFile = DEMO_FLOW_FILES[opts.to];
      const operations = Number(opts.operations);
      if (!Number.isInteger(operations) || operations < 1)
        throw optionError(`--operations ${opts.operations}: not a positive whole number`, 'for example --operations 500');
      const r = await runDemo(stackSettings(), { operations, log: progress, to: opts.to });
      const out = [`\nDebezium change events, by topic and partition (key = entity id):`, formatSummary(r.summaries), '', 'trustsync decisions:'];
      for (const [what, n] of Object.entries(r.decisions)) out.push(`  ${what.padEnd(28)} ${n}`);
      out.push('', 'destination vs source, row by row:');
      for (const t of r.tables) {
        const bad = t.diff.missing.length + t.diff.extra.length + t.diff.wrong.length;
        out.push(`  ${t.table.padEnd(22)} ${String(t.rows).padStart(5)} rows  ${bad === 0 ? 'equal to the source' : `DIFFERS: ${JSON.stringify(t.diff)}`}`);
      }
      if (r.api) {
        // The changes a newer one of the same batch stood in for are on record too; the requests tell the story.
        const sent = { ...r.api.story, timeline: r.api.story.timeline.filter((t) => t.decision !== 'superseded') };
        const superseded = r.api.story.timeline.length - sent.timeline.length;
        out.push(
          '',
          `the API answered ${r.api.requests} requests: ${r.api.throttled} of them 429 (absorbed: the destination paused and slowed, nothing was dead-lettered for it);`,
          `${r.api.replays} repeats were answered from its idempotency store (a request sent again under the key it was first sent with).`,
          '',
          `The story of customer ${r.api.storyKey}, from the control database (each request with its status, attempt and idempotency key):`,
          formatExplanation(sent).replace(/^/gm, '  '),
          `  (${superseded} changes superseded within their batch are on record too; explain lists them)`,
        );
      } else {
        out.push('', `trustsync canary --config ${flowFile} (synthetic records through Debezium and trustsync): ${r.canary}`);
        out.push('', `trustsync reconcile --config ${flowFile} (counts and hashes per bucket, in each database):`);
      }
      for (const t of r.reconcile)
        out.push(
          `  ${t.table.padEnd(22)} ${String(t.sourceRows).padStart(5)} source rows, ${t.mismatchedBuckets} of ${t.buckets} buckets differ, ${t.differences} differences`,
        );
      if (r.stateTopics.length) {
        out.push('', 'compacted Avro state topics (current rows, deletes as tombstones; schemas in the registry):');
        for (const t of r.stateTopics) out.push(`  ${t.topic.padEnd(24)} ${String(t.records).padStart(6)} records`);
        out.push(
          `  keys and value sizes (-1: tombstone):  kcat -b ${stackEndpoints(stackSettings()).kafkaBrokers[0]} -C -e -t ${r.stateTopics[0]!.topic} -f '%k %S\\n'`,
        );
        out.push('  decoded with the registry: docs/state-topics.md, "Reading state topics"');
      }
      if (r.metricsUrl)
        out.push('', `(the flow served Prometheus metrics at ${r.metricsUrl} while it ran; \`npx trustsync lag --group ${r.group}\` shows its consumer lag)`);
      const customers = r.api ? 'crm.customers' : 'shop.customers';
      out.push('', 'Every decision is on record; the story of one customer:', `  npx trustsync explain --config ${flowFile} ${customers} 2`);
      process.stdout.write(`${out.join('\n')}\n`);
      if (r.summaries.some((s) => s.splitKeys.length > 0) || r.tables.some((t) => t.diff.missing.length + t.diff.extra.length + t.diff.wrong.length > 0))
        process.exitCode = 1;
    });
}

function printSyncDemo(r: SyncDemoResult): void {
  const show = (c: Customer | undefined) =>
    c ? [c.name, c.email ?? '-', c.phones.join(' '), c.lifecycle_stage ?? '-', c.status] : ['(deleted)', '', '', '', ''];
  const ids = [...new Set([...r.app, ...r.crm].map((c) => c.id))].sort((a, b) => a - b);
  const rows = [['ID', 'SIDE', 'NAME', 'EMAIL', 'PHONES', 'LIFECYCLE', 'STATUS']];
  for (const id of ids) {
    rows.push([String(id), 'app', ...show(r.app.find((c) => c.id === id))]);
    rows.push(['', 'crm', ...show(r.crm.find((c) => c.id === id))]);
  }
  const out = ['', 'customers after the sync resumed, both databases:', table(rows), '', 'what the policy decided (flows/policies/customers.yaml):'];
  for (const d of r.decisions) out.push(`  into ${d.system.padEnd(3)} #${d.key}: ${d.reason}`);
  out.push('', `waiting for review (${r.reviews.length}):`);
  for (const i of r.reviews)
    out.push(
      `  ${i.id}  customer ${i.key} ${i.field}: kept ${JSON.stringify(i.keptValue)} (${i.owner}, the owner), proposed ${JSON.stringify(i.proposedValue)} (${i.proposer})`,
    );
  const configs = r.flowFiles.map((f) => `--config ${f}`).join(' ');
  if (r.reviews[0]) out.push(`  resolve it in both databases:  npx trustsync review resolve ${r.reviews[0].id} --take external ${configs}`);
  out.push(
    '',
    `${r.edits} edits by people; trustsync wrote ${r.writes.intoCrm} times into the CRM and ${r.writes.intoApp} times into the app;`,
    `${r.writes.echoesSuppressed} of its own writes came back through Debezium and were recognised, not sent back.`,
    r.diverged.length === 0 ? 'both databases agree on everything the policy accepted.' : `DIVERGED on customers ${r.diverged.join(', ')}`,
    '',
    'The story of one customer, decision by decision:',
    '  npx trustsync explain --config flows/app-to-crm.yaml crm.customers 2',
    'Where the two databases still differ, and whose value each field should hold (--repair puts it there):',
    `  npx trustsync reconcile --config ${r.flowFiles[0]} --reverse ${r.flowFiles[1]}`,
  );
  process.stdout.write(`${out.join('\n')}\n`);
  if (r.diverged.length) process.exitCode = 1;
}
