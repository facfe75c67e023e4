import { describe, expect, it } from 'vitest';
import { systemdHierarchies, labCgroups } from '../../lib/host/cgroups.js';
import { bootConcurrency, requiredLimits } from '../../lib/host/limits.js';
import { parseDuration, Semaphore } from '../../lib/wait.js';
import type { MachineConfig } from '../../lib/config/schema.js';
import { backendsOf, memoryShares } from '../../lib/engine/backends.js';
import { assertMemory } from '../../lib/engine/lab.js';

describe('host limits for many machines', () => {
  it('grow with the lab: inotify instances, watches, neighbour entries', () => {
    const at = (machines: number) => Object.fromEntries(requiredLimits(machines).map((l) => [l.sysctl, l.need]));
    expect(at(50)).toEqual({ 'fs.inotify.max_user_instances': 928, 'fs.inotify.max_user_watches': 475_136, 'net.ipv4.neigh.default.gc_thresh3': 1224 });
    // The kernel's defaults (128 instances) are below what 20 machines need: the case that degraded machines.
    expect(at(20)['fs.inotify.max_user_instances']).toBeGreaterThan(128);
    expect(at(3)['fs.inotify.max_user_instances']).toBeLessThan(at(4)['fs.inotify.max_user_instances']);
  });

  it('boot a few machines per core at once, never more than the lab has, or what the config says', () => {
    expect(bootConcurrency(2, 50)).toBe(8);
    expect(bootConcurrency(2, 3)).toBe(3);
    expect(bootConcurrency(1, 50)).toBe(4);
    expect(bootConcurrency(16, 50)).toBe(50);
    expect(bootConcurrency(2, 50, 2)).toBe(2);
    expect(bootConcurrency(2, 3, 10)).toBe(3);
  });

  it('queue holders beyond the slots, in order', async () => {
    const slots = new Semaphore(2);
    const order: string[] = [];
    const a = await slots.acquire();
    const b = await slots.acquire();
    const c = slots.acquire().then((release) => (order.push('c'), release));
    const d = slots.acquire().then((release) => (order.push('d'), release));
    await Promise.resolve();
    expect(order).toEqual([]);
    a();
    a(); // releasing twice frees one slot only
    (await c)();
    b();
    (await d)();
    expect(order).toEqual(['c', 'd']);
  });
});

describe('cgroups of the lab', () => {
  it("finds the hierarchies a machine's systemd uses, on a hybrid and on a unified host", () => {
    const hybrid = 'cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\ncgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n';
    expect(systemdHierarchies(hybrid)).toEqual(['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified']);
    expect(systemdHierarchies('cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n')).toEqual(['/sys/fs/cgroup']);
    expect(labCgroups('lab', 'web', ['/sys/fs/cgroup'])).toEqual(['/sys/fs/cgroup/lab.lab/web']);
  });
});

describe('durations', () => {
  it('reads 500ms, 10s, 2m, 1h and plain seconds; refuses the rest, naming the option', () => {
    expect(parseDuration('500ms', '--timeout')).toBe(500);
    expect(parseDuration('10s', '--timeout')).toBe(10_000);
    expect(parseDuration('2m', '--timeout')).toBe(120_000);
    expect(parseDuration('3', '--timeout')).toBe(3000);
    expect(() => parseDuration('soon', '--timeout')).toThrow("--timeout: 'soon' is not a duration");
    expect(() => parseDuration('0s', '--timeout')).toThrow('out of range');
  });
});

describe('memory for the lab', () => {
  /** `count` machines of a kind, as the config has them, and a vm's own memory. */
  const machines = (kind: MachineConfig['kind'], count: number, vm?: { memoryMiB: number }) =>
    Array.from({ length: count }, (_, i) => ({ name: `${kind}${i}`, kind, ...(vm ? { vm } : {}) }) as MachineConfig);
  /** The lab's memory checked, each machine's need said by its backend. */
  const check = (lab: MachineConfig[], meminfo: string) => () => assertMemory(memoryShares(lab, backendsOf({ machines: lab })), meminfo);

  it('refuses a lab the host cannot hold, with the figures, and lets one it can', () => {
    const meminfo = 'MemTotal:       24000000 kB\nMemAvailable:    2097152 kB\n';
    expect(check(machines('container', 50), meminfo)).toThrow('the lab needs about 3200 MiB of memory for 50 machines (64 MiB each), and the host has 2048 MiB available');
    expect(check(machines('container', 20), meminfo)).not.toThrow();
    // A vm's memory is its own, as its config gives it (256 MiB unless said).
    expect(check([...machines('vm', 2, { memoryMiB: 512 }), ...machines('container', 20)], meminfo)).toThrow('about 2304 MiB of memory for 20 machines (64 MiB each) and its vms (1024 MiB)');
    expect(check([...machines('container', 21), ...machines('vm', 3)], meminfo)).toThrow('about 2112 MiB of memory for 21 machines (64 MiB each) and its vms (768 MiB)');
    // Diskless machines share their root's pages: 80 of them fit where 80 containers would not.
    expect(check([...machines('container', 2), ...machines('diskless', 78)], meminfo)).not.toThrow();
    expect(check([...machines('diskless', 90), ...machines('container', 2)], meminfo)).toThrow('for 2 machines (64 MiB each) and 90 diskless machines (24 MiB each)');
  });
});
