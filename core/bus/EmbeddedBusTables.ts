/** Tables of the embedded bus (filled in by the embedded bus implementation). */
export interface EmbeddedBusTables {}
