/**
 * Where the better-sqlite3 native addon lives. Outside the single binary: undefined (the
 * package finds its own build). Inside it: the asset is extracted next to the data once.
 */
export const nativeBindingPath = (): string | undefined => undefined
