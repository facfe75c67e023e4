import type { ImageSourceKind } from '../image/image.js';

/**
 * What `lab up` says as it goes, for the command line to show (cli/progress.ts): the engine prints
 * nothing. Three tasks, one after the other: the base image (with its build's phases), the machines
 * (all at once, one line each) and the controller stages. Each starts and ends; an end with `error`
 * is a failed task, whose error the engine throws itself.
 */
export type UpEvent =
  | { kind: 'image-start'; source: ImageSourceKind; log: string }
  | { kind: 'image'; line: string }
  | { kind: 'image-end'; from?: 'pool' | 'cache' | ImageSourceKind; error?: unknown }
  | { kind: 'machines-start'; machines: readonly string[] }
  | { kind: 'machine'; machine: string; line: string }
  | { kind: 'machine-end'; machine: string; error?: unknown }
  | { kind: 'machines-end' }
  | { kind: 'controller-start'; stages: readonly string[] }
  | { kind: 'controller'; line: string }
  | { kind: 'controller-end'; stages: readonly string[]; error?: unknown };

/**
 * Called with each event. What it returns for the end of the image, the machines and the controller
 * is awaited: the screen is drawn whole before anything else is written to it.
 */
export type UpProgress = (event: UpEvent) => void | Promise<void>;

/** How a command's progress is shown: live lines on a terminal, plain lines, or nothing (--json: stdout is the report alone). */
export type Renderer = 'default' | 'simple' | 'silent';
