/** Chorus's own version (kept equal to package.json's by a test) and the host API version plugins target. */
export const VERSION = "0.1.0"
