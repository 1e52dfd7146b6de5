/**
 * The gradient all-reduces of a data-parallel step on a stream of their own (the CUDA executor's),
 * so each bucket moves while the backward computes the next, as DDP overlaps them. A bucket's
 * all_reduce (phase 'backward', a communicator) is forked from the step's stream when its last
 * gradient is made (an event recorded there, waited for on the side stream), and joined back just
 * before the first kernel that reads its averaged gradients (clipping, AdamW), and at the end of
 * the step at the latest, so a captured CUDA graph forks and joins as the launches did.
 *
 * Only buckets reduced in place take the side stream: their storage is the averaged gradients',
 * which the memory plan keeps until the optimizer reads them, so no later backward kernel reuses
 * it while NCCL still reads and writes it. A bucket with a copy (its input freed after the node in
 * the plan's order) stays on the step's stream. The result is the same bits either way: the same
 * kernels on the same data, only their overlap differs.
 */
import * as kn from '@deepwell/kernels-native';
import type { DevArg } from '@deepwell/kernels-native';
import type { NodeDecl } from './graph.js';

/** Whether node `n` (with these bound arguments) runs on the side stream. */
export function overlaps(n: NodeDecl, inputs: readonly DevArg[], outputs: readonly DevArg[]): boolean {
  return n.op === 'all_reduce' && n.phase === 'backward' && n.attrs.comm !== 0 && inputs.every((x, k) => x.base === outputs[k]!.base && x.offset === outputs[k]!.offset);
}

export class CollectiveOverlap {
  readonly stream: kn.Stream;
  #events = new Map<number, [kn.Event, kn.Event]>();
  /** Values written on the side stream and not yet joined: value id -> its node's join event. */
  #pending = new Map<number, kn.Event>();

  /** A side stream on `device` and a fork / join pair of events for each launch index in `indices`. */
  constructor(device: number, indices: readonly number[]) {
    this.stream = new kn.Stream(device);
    try {
      for (const k of indices) this.#events.set(k, [new kn.Event(device, { timing: false }), new kn.Event(device, { timing: false })]);
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** Whether launch `k` runs on the side stream. */
  has(k: number): boolean {
    return this.#events.has(k);
  }

  /** Before node `n` runs on `main`: the joins of the values it reads. */
  before(n: NodeDecl, main: kn.Stream): void {
    if (this.#pending.size === 0) return;
    for (const i of n.inputs) {
      const ev = this.#pending.get(i);
      if (ev) this.#joinEvent(ev, main);
    }
  }

  /** Runs launch `k` (node `n`) on the side stream: forked from `main` before, its join recorded after. */
  run(k: number, n: NodeDecl, main: kn.Stream, launch: () => void): void {
    const [fork, join] = this.#events.get(k)!;
    fork.record(main);
    this.stream.wait(fork);
    launch();
    join.record(this.stream);
    for (const o of n.outputs) this.#pending.set(o, join);
  }

  /** At the end of a step: every fork joined back into `main`. */
  joinAll(main: kn.Stream): void {
    for (const ev of new Set(this.#pending.values())) main.wait(ev);
    this.#pending.clear();
  }

  #joinEvent(ev: kn.Event, main: kn.Stream): void {
    main.wait(ev);
    for (const [v, e] of [...this.#pending]) if (e === ev) this.#pending.delete(v);
  }

  dispose(): void {
    for (const [a, b] of this.#events.values()) a.dispose(), b.dispose();
    this.#events.clear();
    this.#pending.clear();
    this.stream.dispose();
  }
}
