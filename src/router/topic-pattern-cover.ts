/**
 * Does one AMQP topic pattern cover another: is every routing key that `requested` can match
 * also matched by `allowed`? Permissions need this, not {@link topicMatches}: a subscriber asks
 * for a *pattern*, and treating its `#` or `*` as a plain word lets `sensors.*` admit
 * `sensors.#` (which also reaches `sensors.a.b` and `sensors`). NATS refuses `foo.>` to a user
 * allowed only `foo.*`; so do we.
 *
 * How: both patterns are word automata (state i = "the first i pattern words are matched"; `#`
 * may stay or skip, `*` takes any one word, a literal takes itself). The keys `requested` matches
 * but `allowed` does not form a regular language; it is empty iff no reachable state of the
 * product (requested's NFA × the subset construction of allowed's NFA) has requested accepting
 * and allowed not. The alphabet is infinite but `allowed` only tells apart its own literal words
 * and "any other word", so those classes are the whole alphabet of the search.
 *
 * Cost: one call per subscribe or bind, never per message. Reachable subsets are few for real
 * patterns; a pathological pair that would explore more than {@link MAX_EXPLORED_STATES} states
 * is refused, which errs on the safe side.
 */
import { splitWords } from './topic-matcher.js';

/** Bound on product states explored for one check: far above any real pattern pair (a 20-word pattern with 5 `#` explores a few hundred). */
export const MAX_EXPLORED_STATES = 20_000;

const STAR = '*';
const HASH = '#';

/** True when every routing key matched by `requested` is matched by `allowed`. */
export function patternCovers(allowed: string, requested: string): boolean {
  const a = splitWords(allowed);
  const r = splitWords(requested);
  if (a.length === 1 && a[0] === HASH) return true;

  // Word classes: each literal of `allowed` is one; `null` stands for every other word.
  const classes: Array<string | null> = [];
  for (const w of a) if (w !== STAR && w !== HASH && !classes.includes(w)) classes.push(w);
  classes.push(null);

  const start = closure(a, [0]);
  const seen = new Set<string>();
  const queue: Array<[number, number[]]> = [[0, start]];
  seen.add(key(0, start));
  while (queue.length > 0) {
    const [j, states] = queue.pop()!;
    const rStates = closure(r, [j]);
    if (rStates.includes(r.length) && !states.includes(a.length)) return false;
    for (const cls of classes) {
      const aNext = step(a, states, cls);
      for (const rs of rStates) {
        if (rs === r.length) continue;
        const word = r[rs];
        let next: number;
        if (word === HASH) next = rs;
        else if (word === STAR || classOfWord(word, classes) === cls) next = rs + 1;
        else continue;
        const k = key(next, aNext);
        if (seen.has(k)) continue;
        if (seen.size >= MAX_EXPLORED_STATES) return false;
        seen.add(k);
        queue.push([next, aNext]);
      }
    }
  }
  return true;
}

/** States reachable from `from` without consuming a word: a `#` may match zero words. Sorted, unique. */
function closure(words: readonly string[], from: readonly number[]): number[] {
  const out = new Set<number>();
  for (let s of from) {
    out.add(s);
    while (s < words.length && words[s] === HASH) out.add(++s);
  }
  return [...out].sort((x, y) => x - y);
}

/** The closed state set after consuming one word of class `cls` (`null`: a word `words` never names). */
function step(words: readonly string[], states: readonly number[], cls: string | null): number[] {
  const next: number[] = [];
  for (const s of states) {
    if (s === words.length) continue;
    const w = words[s];
    if (w === HASH) next.push(s);
    else if (w === STAR || w === cls) next.push(s + 1);
  }
  return closure(words, next);
}

function classOfWord(word: string, classes: ReadonlyArray<string | null>): string | null {
  return classes.includes(word) ? word : null;
}

function key(j: number, states: readonly number[]): string {
  return j + ':' + states.join(',');
}
