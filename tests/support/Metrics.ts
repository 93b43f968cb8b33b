/** The value of one series in Prometheus text (`name{a="x",b="y"} value`); 0 when absent. */
export const metricValue = (
  text: string,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number => {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(",")
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null || match[1] !== name) continue
    const have = (match[2] ?? "").split(",").filter((l) => l !== "").sort().join(",")
    if (have === wanted) return Number(match[3])
  }
  return 0
}
