import type { Tool } from '../host/prereq.js';
import type { PackageManager } from './packages.js';

export type ImageSourceKind = 'debootstrap' | 'pacstrap' | 'tarball';

/** Bump when the way base images are made changes, so cached images are rebuilt. */
export const RECIPE_VERSION = 3;
export const BUILD_TIMEOUT_MS = 20 * 60_000;

/**
 * Where machines' base root filesystem comes from. Constructing one reads the config and the
 * host's files and runs nothing; `check` says what this host cannot give.
 */
export interface ImageDriver {
  readonly source: ImageSourceKind;
  readonly distribution: string;
  readonly suite: string;
  /** The base image's cache key: what it is built from, and how. */
  readonly key: string;
  /** One line for doctor and status: where the image comes from and why. */
  describe(): string;
  tools(): Tool[];
  /** Fails (exit 2) when the config asks for what this host cannot give, saying what to use instead. */
  check(): Promise<void>;
  /** Fills `target`, an empty directory, with the root filesystem; progress goes to `log` line by line. */
  build(target: string, cacheDir: string, log: (line: string) => void): Promise<void>;
  /** Whether a line of the build's output is a detail (one per package): kept in the log, not shown as progress. */
  isDetail?(line: string): boolean;
  /** The package manager inside a root of this image. */
  packageManager(root: string): PackageManager | undefined;
  /**
   * apt's sources for `lab image upgrade`: the release with its updates (and security, where the
   * host's sources name a security mirror); undefined where the image's own sources are kept.
   */
  upgradeSources?(): string | undefined;
}
