import { existsSync, mkdirSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { VERSIONS, type StackSettings } from './settings.js';
import { runCommand, CommandNotFound, CommandFailed } from './processes.js';
import { StackError } from '../model/errors.js';

/** Where each fetched artifact lives once it is complete. */
export interface ArtifactLayout {
  kafkaLibs: string;
  pluginsDir: string;
  registryDir: string;
}

export function artifactLayout(s: StackSettings): ArtifactLayout {
  return {
    kafkaLibs: join(s.artifactsDir, `kafka-${VERSIONS.kafka}`, 'libs'),
    pluginsDir: join(s.artifactsDir, `connect-plugins-debezium-${VERSIONS.debezium}-apicurio-${VERSIONS.apicurioConverter}`),
    registryDir: join(s.artifactsDir, `apicurio-registry-${VERSIONS.apicurioRegistry}`),
  };
}

/**
 * `copy-dependencies` resolves a pom's whole tree (the Kafka classpath, the converter plugin).
 * Archives are fetched alone with `get` (no descriptor resolution: some upstream parent poms are not
 * on Maven Central) and unpacked with tar.
 */
const DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1';
const GET_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:2.8';

interface Fetch {
  name: string;
  target: string;
  mavenArgs: string[];
  /** An archive `mavenArgs` downloads, to unpack into `unpackInto`. */
  archive?: { file: string; unpackInto: string };
}

function fetches(s: StackSettings): Fetch[] {
  const layout = artifactLayout(s);
  const pom = (file: string) => join(s.packageDir, 'src', 'stack', 'maven', file);
  const download = join(s.artifactsDir, 'downloads');
  const archive = (name: string, coordinates: string, target: string, unpackInto: string): Fetch => {
    const file = join(download, `${coordinates.replaceAll(':', '_')}`);
    return {
      name,
      target,
      mavenArgs: [`${GET_PLUGIN}:get`, `-Dartifact=${coordinates}`, '-Dtransitive=false', `-Ddest=${file}`],
      archive: { file, unpackInto },
    };
  };
  const copyDependencies = (name: string, pomFile: string, target: string): Fetch => ({
    name,
    target,
    mavenArgs: ['-f', pom(pomFile), `${DEPENDENCY_PLUGIN}:copy-dependencies`, '-DincludeScope=runtime', `-DoutputDirectory=${target}`],
  });
  return [
    copyDependencies(`Kafka ${VERSIONS.kafka} (broker + Connect)`, 'kafka.pom.xml', layout.kafkaLibs),
    archive(
      `Debezium PostgreSQL connector ${VERSIONS.debezium}`,
      `io.debezium:debezium-connector-postgres:${VERSIONS.debezium}:tar.gz:plugin`,
      join(layout.pluginsDir, 'debezium-connector-postgres'),
      layout.pluginsDir,
    ),
    archive(
      `Debezium JDBC sink connector ${VERSIONS.debezium}`,
      `io.debezium:debezium-connector-jdbc:${VERSIONS.debezium}:tar.gz:plugin`,
      join(layout.pluginsDir, 'debezium-connector-jdbc'),
      layout.pluginsDir,
    ),
    copyDependencies(`Apicurio Avro converter ${VERSIONS.apicurioConverter}`, 'apicurio-converter.pom.xml', join(layout.pluginsDir, 'apicurio-converter')),
    archive(
      `Apicurio Registry ${VERSIONS.apicurioRegistry}`,
      `io.apicurio:apicurio-registry-app:${VERSIONS.apicurioRegistry}:tar.gz:all`,
      layout.registryDir,
      layout.registryDir,
    ),
  ];
}

const COMPLETE = '.trustsync-complete';

/** True when every artifact is already in the cache (a warm `stack up` needs no Maven at all). */
export function artifactsReady(s: StackSettings): boolean {
  return fetches(s).every((f) => existsSync(join(f.target, COMPLETE)));
}

/**
 * Fetches what is missing from Maven Central through `mvn`, showing progress.
 * A folder is only marked complete after its fetch succeeded, so an interrupted download is redone.
 */
export async function ensureArtifacts(s: StackSettings, log: (line: string) => void): Promise<ArtifactLayout> {
  for (const f of fetches(s)) {
    if (existsSync(join(f.target, COMPLETE))) continue;
    log(`fetching ${f.name} from Maven Central …`);
    rmSync(f.target, { recursive: true, force: true });
    mkdirSync(f.target, { recursive: true });
    mkdirSync(join(s.artifactsDir, 'downloads'), { recursive: true });
    const args = ['-B', '-s', join(s.packageDir, 'src', 'stack', 'maven', 'settings.xml'), ...f.mavenArgs];
    try {
      await runCommand('mvn', args, {
        cwd: s.artifactsDir,
        onLine: (line) => {
          // Poms are many and small: show the jars and archives, which are what takes time.
          const m = /Downloaded from [^:]+: \S*\/([^/\s]+\.(?:jar|tar\.gz|zip)) \(([^)]*)\)/.exec(line);
          if (m) log(`  downloaded ${m[1]}${m[2]!.startsWith('0 B') ? '' : ` (${m[2]!.split(' at ')[0]})`}`);
        },
      });
    } catch (err) {
      if (err instanceof CommandNotFound) {
        throw new StackError(
          'Maven (mvn) is not installed; trustsync fetches Kafka, Debezium and the registry with it.',
          'install Maven (e.g. `apt-get install maven`) and run `trustsync stack up` again.',
        );
      }
      const tail = err instanceof CommandFailed ? err.outputTail : String(err);
      throw new StackError(
        `downloading ${f.name} failed:\n${
          tail
            .split('\n')
            .filter((l) => l.includes('ERROR'))
            .slice(0, 5)
            .join('\n') || tail
        }`,
        'check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml), then run `trustsync stack up` again; completed downloads are kept.',
      );
    }
    if (f.archive) {
      mkdirSync(f.archive.unpackInto, { recursive: true });
      await runCommand('tar', ['-xzf', f.archive.file, '-C', f.archive.unpackInto]);
      rmSync(f.archive.file, { force: true });
    }
    if (readdirSync(f.target).length === 0) {
      throw new StackError(`downloading ${f.name} left ${f.target} empty.`, 'remove that folder and run `trustsync stack up` again.');
    }
    writeFileSync(join(f.target, COMPLETE), new Date().toISOString());
  }
  return artifactLayout(s);
}
