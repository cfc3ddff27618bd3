import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand, CommandNotFound } from './processes.js';
import { StackError } from '../model/errors.js';

export function javaCommand(env: NodeJS.ProcessEnv = process.env): string {
  const fromHome = env.JAVA_HOME ? join(env.JAVA_HOME, 'bin', 'java') : undefined;
  return fromHome && existsSync(fromHome) ? fromHome : 'java';
}

/** Kafka 4.1, Debezium 3.3 and Apicurio 3.3 all need Java 17 or newer. */
export async function assertJava(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const java = javaCommand(env);
  let output: string;
  try {
    output = await runCommand(java, ['-version'], { env });
  } catch (err) {
    if (err instanceof CommandNotFound) {
      throw new StackError(
        'java was not found: Kafka, Kafka Connect and the schema registry are Java programs.',
        'install a JDK 17 or newer (e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME.',
      );
    }
    throw err;
  }
  const m = /version "(\d+)/.exec(output);
  const major = m ? Number(m[1]) : 0;
  if (major < 17) {
    throw new StackError(`${java} is Java ${major || 'of unknown version'}; the stack needs Java 17 or newer.`, 'install a JDK 17+ and point JAVA_HOME at it.');
  }
  return java;
}

/** A log4j2 configuration that writes to the console (the component's log file), INFO and up. */
export function writeLog4j2Config(dir: string): string {
  const file = join(dir, 'log4j2.properties');
  writeFileSync(
    file,
    [
      'status = warn',
      'appender.console.type = Console',
      'appender.console.name = STDOUT',
      'appender.console.layout.type = PatternLayout',
      'appender.console.layout.pattern = [%d] %p %m (%c)%n',
      'rootLogger.level = info',
      'rootLogger.appenderRef.stdout.ref = STDOUT',
      // The controller and request loggers are chatty and say little an operator needs.
      'logger.kafkaController.name = kafka.controller',
      'logger.kafkaController.level = warn',
      'logger.stateChange.name = state.change.logger',
      'logger.stateChange.level = warn',
      'logger.reflections.name = org.reflections',
      'logger.reflections.level = error',
      '',
    ].join('\n'),
  );
  return file;
}

/** The serial collector suits the small services; `parallel`, the throughput collector, a worker under full load. */
export function jvmArgs(marker: string, heap: string, log4jConfig?: string, collector: 'serial' | 'parallel' = 'serial'): string[] {
  const args = [marker, `-Xms128m`, `-Xmx${heap}`, collector === 'serial' ? '-XX:+UseSerialGC' : '-XX:+UseParallelGC', '-Djava.awt.headless=true'];
  if (log4jConfig) args.push(`-Dlog4j2.configurationFile=${log4jConfig}`);
  return args;
}
