/**
 * zod compiles fast parsers with `new Function` where it may, and probes for that the first time it builds an
 * object schema. Under a Content-Security-Policy without 'unsafe-eval' (the relay serves the dashboard with one)
 * the probe logs a violation. This module is imported first, so zod is told before @chorus/sync builds its schemas.
 */
import { config } from 'zod'

config({ jitless: true })
