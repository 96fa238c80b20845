/** Plain aligned text tables for the benchmark report (console.table quotes strings and adds an index column). */

export interface Column {
  header: string
  /** Numbers read best right-aligned; default 'right' except for the first column. */
  align?: 'left' | 'right'
}

export type Cell = string | number

const pad = (s: string, width: number, align: 'left' | 'right'): string => (align === 'left' ? s.padEnd(width) : s.padStart(width))

export const formatTable = (columns: ReadonlyArray<Column | string>, rows: ReadonlyArray<ReadonlyArray<Cell>>): string => {
  const cols: Column[] = columns.map((c, i) => (typeof c === 'string' ? { header: c, align: i === 0 ? 'left' : 'right' } : c))
  const text = rows.map((r) => cols.map((_, i) => String(r[i] ?? '')))
  const widths = cols.map((c, i) => Math.max(c.header.length, ...text.map((r) => (r[i] as string).length)))
  const line = (cells: string[]): string =>
    cells
      .map((s, i) => pad(s, widths[i] as number, cols[i]?.align ?? 'right'))
      .join('  ')
      .trimEnd()
  const out = [line(cols.map((c) => c.header)), widths.map((w) => '-'.repeat(w)).join('  ')]
  for (const r of text) out.push(line(r))
  return out.join('\n')
}

/** Prints a titled table followed by its notes. */
export const printTable = (
  title: string,
  columns: ReadonlyArray<Column | string>,
  rows: ReadonlyArray<ReadonlyArray<Cell>>,
  notes: readonly string[] = [],
): void => {
  console.log(`\n${title}\n${'='.repeat(title.length)}`)
  console.log(formatTable(columns, rows))
  for (const n of notes) console.log(`  ${n}`)
}
