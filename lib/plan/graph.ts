import { UsageError } from '../errors.js';

export interface Node {
  name: string;
  dependsOn: readonly string[];
}

/**
 * Dependency order (dependencies first, ties in declaration order).
 * A cycle is a usage error that spells the cycle out.
 */
export function topologicalOrder(nodes: readonly Node[]): string[] {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, trail: string[]): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      const cycle = [...trail.slice(trail.indexOf(name)), name];
      throw new UsageError(`machines: dependency cycle ${cycle.join(' -> ')}`);
    }
    state.set(name, 'visiting');
    for (const dep of byName.get(name)?.dependsOn ?? []) visit(dep, [...trail, name]);
    state.set(name, 'done');
    order.push(name);
  };
  for (const node of nodes) visit(node.name, []);
  return order;
}

/** The named nodes plus everything they depend on, transitively. */
export function withDependencies(nodes: readonly Node[], names: readonly string[]): Set<string> {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const selected = new Set<string>();
  const add = (name: string): void => {
    if (selected.has(name)) return;
    selected.add(name);
    for (const dep of byName.get(name)?.dependsOn ?? []) add(dep);
  };
  names.forEach(add);
  return selected;
}
