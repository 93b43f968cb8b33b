/** Tables of migration 2026_11_24_0006_attachments. Times in epoch ms. */
export interface AttachmentFileTable {
  /** `sha256-<hex>`: the blob's key in the blob store. */
  key: string
  mime_type: string
  size: number | bigint | string
  created_at: number | bigint | string
}

export interface SecretTable {
  name: string
  value: string
  created_at: number | bigint | string
}

export interface AttachmentTables {
  attachment_files: AttachmentFileTable
  chorus_secrets: SecretTable
}
