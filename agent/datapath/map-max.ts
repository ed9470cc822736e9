/** Map sizes asked for at load: `--map-max weir_policy=64` (lab) or `mapMax: weir_policy=64,...` (agent). */

/** ["weir_policy=64", ...] -> { weir_policy: 64 }; throws naming the bad item. */
export function parseMapMax(list: string[] = []): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of list) {
    const m = /^(weir_[a-z0-9_]+)=(\d+)$/.exec(item.trim());
    if (!m || Number(m[2]) < 1)
      throw new Error(`map size ${item}: expected MAP=N with a map name such as weir_policy and N >= 1`);
    out[m[1] as string] = Number(m[2]);
  }
  return out;
}
