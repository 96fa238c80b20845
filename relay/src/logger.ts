/** Where the relay reports what happens; injected so tests stay quiet and embedders can route it. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
}

const line = (level: string, message: string, fields?: Record<string, unknown>): string => {
  const extra = fields === undefined ? '' : ` ${JSON.stringify(fields, (_k, v: unknown) => describe(v))}`
  return `chorus relay ${level}: ${message}${extra}\n`
}

const describe = (value: unknown): unknown => (value instanceof Error ? `${value.name}: ${value.message}` : value)

/** Writes to stderr: stdout carries only the "listening" line that scripts wait for. */
export const stderrLogger: Logger = {
  info: (message, fields) => void process.stderr.write(line('info', message, fields)),
  warn: (message, fields) => void process.stderr.write(line('warn', message, fields)),
  error: (message, fields) => void process.stderr.write(line('error', message, fields)),
}

export const silentLogger: Logger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
}
