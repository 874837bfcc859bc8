/**
 * The one guard every state machine goes through (the relay's sessions and legs, the
 * B2BUA's transactions and dialogs): a move not in the machine's NEXT table throws
 * IllegalTransition, a bug in the caller, never a reaction to input.
 */

export class IllegalTransition extends Error {
  override readonly name = 'IllegalTransition';
  constructor(
    readonly machine: string,
    readonly from: string,
    readonly to: string,
  ) {
    super(`${machine}: illegal transition ${from} -> ${to}`);
  }
}

export type NextTable<S extends string> = Readonly<Record<S, readonly S[]>>;

/** `to` when NEXT allows from -> to, else throws IllegalTransition. */
export function guardedTransition<S extends string>(machine: string, next: NextTable<S>, from: S, to: S): S {
  if (!next[from].includes(to)) throw new IllegalTransition(machine, from, to);
  return to;
}
