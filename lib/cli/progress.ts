import type { ListrTask } from 'listr2';
import { LabError } from '../errors.js';
import type { Renderer, UpEvent, UpProgress } from '../engine/progress.js';

/** How a command's progress is shown: nothing with --json (stdout is the report alone), live lines on a terminal, plain lines otherwise. */
export function rendererFor(json: boolean): Renderer {
  return json ? 'silent' : process.stdout.isTTY ? 'default' : 'simple';
}

/** The title an event gives its task's line: undefined when it leaves the title as it is (a failed task shows its error). */
export function titleOf(event: UpEvent): string | undefined {
  switch (event.kind) {
    case 'image-start':
      return `base image (${event.source}; log: ${event.log})`;
    case 'image-end':
      return event.from && `base image: ${event.from === 'cache' ? 'imported from the cache' : `built with ${event.from}`}`;
    case 'machines-start':
      return undefined; // each machine's line starts as its name
    case 'machine':
      return `${event.machine}: ${event.line}`;
    case 'controller-start':
      return `controller: ${event.stages.join(', ')}`;
    case 'controller':
      return `controller: ${event.line}`;
    case 'controller-end':
      return event.error === undefined ? `controller: ran ${event.stages.join(', ')}` : undefined;
    default:
      return undefined;
  }
}

/**
 * lab up's progress, drawn by listr2; undefined when nothing is shown. listr2 is loaded here only:
 * it costs start-up time that `lab exec` and `lab status` do not pay.
 */
export async function upProgress(renderer: Renderer): Promise<UpProgress | undefined> {
  if (renderer === 'silent') return undefined;
  const screen = new ListrScreen(await import('listr2'), renderer);
  return (event) => screen.show(event);
}

/**
 * What a failed line says: the error's summary, without the command that failed (its argv runs to
 * hundreds of characters): the error itself is printed whole once the command ends.
 */
export function failureLine(error: unknown): string {
  return error instanceof LabError ? error.summary : (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
}

type TaskWrapper = Parameters<ListrTask['task']>[1];

/** A line on screen, fed by events: what is said of it before listr2 starts it is applied, in order, when it does. */
class ShownTask {
  private wrapper?: TaskWrapper;
  private pending: ((wrapper: TaskWrapper) => void)[] = [];
  private finish!: (error?: unknown) => void;
  private readonly done = new Promise<void>((resolve, reject) => (this.finish = (error) => (error === undefined ? resolve() : reject(error))));

  constructor() {
    this.done.catch(() => undefined); // awaited once listr2 runs the task; an end told before is no crash
  }

  /** The task as listr2 runs it: until its end is told; a failure is listr2's to show. */
  async run(wrapper: TaskWrapper): Promise<void> {
    this.wrapper = wrapper;
    for (const change of this.pending) change(wrapper);
    this.pending = [];
    await this.done;
  }

  title(title: string): void {
    this.change((wrapper) => (wrapper.title = title));
  }

  output(line: string): void {
    this.change((wrapper) => (wrapper.output = line));
  }

  end(error: unknown): void {
    this.finish(error === undefined ? undefined : new Error(failureLine(error)));
  }

  private change(apply: (wrapper: TaskWrapper) => void): void {
    if (this.wrapper) apply(this.wrapper);
    else this.pending.push(apply);
  }
}

/** One listr2 list at a time: the base image, then every machine at once (one line each, whatever the lab's size), then the controller. */
class ListrScreen {
  private tasks = new Map<string, ShownTask>();
  private drawn: Promise<void> = Promise.resolve();

  constructor(
    private readonly listr2: typeof import('listr2'),
    private readonly renderer: Renderer,
  ) {}

  show(event: UpEvent): void | Promise<void> {
    const title = titleOf(event);
    switch (event.kind) {
      case 'image-start':
        return this.open([{ id: 'image', title: title! }], { outputBar: true });
      case 'machines-start':
        return this.open(event.machines.map((machine) => ({ id: machine, title: machine })), { concurrent: true });
      case 'controller-start':
        return this.open([{ id: 'controller', title: title! }]);
      case 'image':
        return this.tasks.get('image')?.output(event.line);
      case 'machine':
        return this.tasks.get(event.machine)?.title(title!);
      case 'controller':
        return this.tasks.get('controller')?.title(title!);
      case 'machine-end':
        return this.tasks.get(event.machine)?.end(event.error);
      case 'image-end':
      case 'controller-end': {
        const task = this.tasks.get(event.kind === 'image-end' ? 'image' : 'controller');
        if (title) task?.title(title);
        task?.end(event.error);
        return this.drawn;
      }
      case 'machines-end':
        return this.drawn;
    }
  }

  /** A new list: its lines run until their ends are told, concurrently for the machines (one failing does not stop the others). */
  private open(lines: { id: string; title: string }[], options: { concurrent?: boolean; outputBar?: boolean } = {}): void {
    const { Listr, PRESET_TIMER } = this.listr2;
    const shown = lines.map((line) => ({ ...line, task: new ShownTask() }));
    this.tasks = new Map(shown.map((line) => [line.id, line.task]));
    const tasks: ListrTask[] = shown.map((line) => ({
      title: line.title,
      task: (_, wrapper) => line.task.run(wrapper),
      ...(options.outputBar ? { rendererOptions: { outputBar: 1, persistentOutput: false } } : {}),
    }));
    const listr = new Listr(tasks, {
      ...(options.concurrent ? { concurrent: true, exitOnError: false } : {}),
      // lab handles SIGINT itself (cli/main.ts): listr2's own handler would exit 127 and leave the lock.
      registerSignalListeners: false,
      renderer: this.renderer,
      fallbackRenderer: 'simple',
      rendererOptions: { timer: PRESET_TIMER },
      fallbackRendererOptions: { timer: PRESET_TIMER },
    });
    this.drawn = listr.run().then(
      () => undefined,
      () => undefined, // a failed task is shown by listr2, and its error thrown by the engine
    );
  }
}
