/**
 * Width and height of a PNG, JPEG, GIF or WebP image read from its header, so the Telegram fake
 * can answer `sendPhoto` with a real `PhotoSize` and refuse bytes that are no image, as Telegram
 * does (`IMAGE_PROCESS_FAILED`).
 */

export interface ImageSize {
  readonly format: "png" | "jpeg" | "gif" | "webp"
  readonly width: number
  readonly height: number
}

const ascii = (bytes: Uint8Array, start: number, end: number) =>
  Buffer.from(bytes.subarray(start, end)).toString("latin1")

export const imageSize = (bytes: Uint8Array): ImageSize | undefined => {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (b.length >= 24 && b.readUInt32BE(0) === 0x89504e47 && ascii(b, 12, 16) === "IHDR") {
    return { format: "png", width: b.readUInt32BE(16), height: b.readUInt32BE(20) }
  }
  if (b.length >= 10 && (ascii(b, 0, 6) === "GIF87a" || ascii(b, 0, 6) === "GIF89a")) {
    return { format: "gif", width: b.readUInt16LE(6), height: b.readUInt16LE(8) }
  }
  if (b.length >= 30 && ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 12) === "WEBP") {
    const chunk = ascii(b, 12, 16)
    if (chunk === "VP8X") {
      return { format: "webp", width: 1 + b.readUIntLE(24, 3), height: 1 + b.readUIntLE(27, 3) }
    }
    if (chunk === "VP8 ") {
      return {
        format: "webp",
        width: b.readUInt16LE(26) & 0x3fff,
        height: b.readUInt16LE(28) & 0x3fff,
      }
    }
    if (chunk === "VP8L") {
      const bits = b.readUInt32LE(21)
      return { format: "webp", width: 1 + (bits & 0x3fff), height: 1 + ((bits >> 14) & 0x3fff) }
    }
    return undefined
  }
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
    // walk the JPEG segments to the first start-of-frame marker
    let at = 2
    while (at + 9 < b.length) {
      if (b[at] !== 0xff) return undefined
      const marker = b[at + 1]!
      if (marker === 0xff) {
        at += 1
        continue
      }
      const length = b.readUInt16BE(at + 2)
      const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 &&
        marker !== 0xcc
      if (isFrame) {
        return { format: "jpeg", height: b.readUInt16BE(at + 5), width: b.readUInt16BE(at + 7) }
      }
      at += 2 + length
    }
  }
  return undefined
}
