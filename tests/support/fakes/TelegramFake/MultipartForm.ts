/**
 * A multipart/form-data body read into fields and files, as the Telegram fake needs it. grammY
 * writes its parts with lower-case, space-less headers and an unquoted filename
 * (`content-disposition:form-data;name="x";filename=photo.jpg`), curl writes the usual
 * `Content-Disposition: form-data; name="x"; filename="a.png"`; both are read.
 */

export interface FormFile {
  readonly filename: string | undefined
  readonly contentType: string | undefined
  readonly bytes: Uint8Array
}

export interface MultipartForm {
  readonly fields: Record<string, string>
  readonly files: Record<string, FormFile>
}

/** The boundary from a `multipart/form-data; boundary=...` content type, if it is one. */
export const multipartBoundary = (contentType: string | undefined): string | undefined => {
  if (contentType === undefined || !/^multipart\/form-data/i.test(contentType)) return undefined
  const match = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType)
  return match?.[1] ?? match?.[2]
}

const CRLF = Buffer.from("\r\n")
const HEADER_END = Buffer.from("\r\n\r\n")

/** Splits the body at each `--boundary` line; throws on a body that is not multipart. */
export const parseMultipart = (body: Buffer, boundary: string): MultipartForm => {
  const delimiter = Buffer.from(`--${boundary}`)
  const fields: Record<string, string> = {}
  const files: Record<string, FormFile> = {}
  let at = body.indexOf(delimiter)
  if (at === -1) throw new Error("multipart body without its boundary")
  for (;;) {
    let start = at + delimiter.length
    // `--boundary--` closes the body
    if (body[start] === 0x2d && body[start + 1] === 0x2d) break
    if (body.subarray(start, start + 2).equals(CRLF)) start += 2
    const next = body.indexOf(delimiter, start)
    if (next === -1) throw new Error("multipart body not closed")
    // the part ends before the CRLF that precedes the next delimiter
    const end = body.subarray(next - 2, next).equals(CRLF) ? next - 2 : next
    const part = body.subarray(start, end)
    const headerEnd = part.indexOf(HEADER_END)
    if (headerEnd === -1) throw new Error("multipart part without headers")
    const headers = part.subarray(0, headerEnd).toString("utf8").split("\r\n")
    const content = part.subarray(headerEnd + 4)
    let name: string | undefined
    let filename: string | undefined
    let contentType: string | undefined
    for (const line of headers) {
      const colon = line.indexOf(":")
      if (colon === -1) continue
      const key = line.slice(0, colon).trim().toLowerCase()
      const value = line.slice(colon + 1).trim()
      if (key === "content-disposition") {
        name = dispositionParam(value, "name")
        filename = dispositionParam(value, "filename")
      } else if (key === "content-type") {
        contentType = value
      }
    }
    if (name !== undefined) {
      if (filename !== undefined) {
        files[name] = { filename, contentType, bytes: new Uint8Array(content) }
      } else {
        fields[name] = content.toString("utf8")
      }
    }
    at = next
  }
  return { fields, files }
}

const dispositionParam = (value: string, param: string): string | undefined => {
  const match = new RegExp(`(?:^|;)\\s*${param}=(?:"([^"]*)"|([^;]*))`, "i").exec(value)
  if (match === null) return undefined
  return (match[1] ?? match[2] ?? "").trim()
}
