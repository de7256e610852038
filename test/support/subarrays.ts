// Counts the subarray views made while a function runs: the hot path's writers and copies
// should make none (one is an object, and a collection later).

export function countSubarrays(run: () => void): number {
  const proto = Object.getPrototypeOf(Uint8Array.prototype) as { subarray: (...a: number[]) => unknown };
  const original = proto.subarray;
  let n = 0;
  proto.subarray = function (this: unknown, ...a: number[]) {
    n++;
    return original.apply(this, a);
  };
  try {
    run();
  } finally {
    proto.subarray = original;
  }
  return n;
}
