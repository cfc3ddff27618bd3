import { Command } from 'commander';
import { stackCommand } from './stack-command.js';
import { connectorsCommand } from './connectors-command.js';
import { demoCommand } from './demo-command.js';
import { dlqCommand, runCommand } from './flow-commands.js';
import { lagCommand } from './lag-command.js';
import { explainCommand } from './explain-command.js';
import { reviewCommand } from './review-command.js';
import { reconcileCommand } from './reconcile-command.js';
import { canaryCommand } from './canary-command.js';
import { initCommand, validateCommand } from './setup-commands.js';
import { reportFailure } from './output.js';

const program = new Command()
  .name('trustsync')
  .description('CDC sync that keeps destinations right: ordered, idempotent, policy-governed apply of Debezium changes.')
  .version('0.1.0')
  .showHelpAfterError();

program.addCommand(stackCommand());
program.addCommand(connectorsCommand());
program.addCommand(initCommand());
program.addCommand(validateCommand());
program.addCommand(runCommand());
program.addCommand(dlqCommand());
program.addCommand(lagCommand());
program.addCommand(explainCommand());
program.addCommand(reviewCommand());
program.addCommand(reconcileCommand());
program.addCommand(canaryCommand());
program.addCommand(demoCommand());

program.parseAsync(process.argv).catch((err) => {
  process.exit(reportFailure(err));
});
