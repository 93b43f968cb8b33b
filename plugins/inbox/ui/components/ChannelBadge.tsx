/** A channel as a coloured letter (the colour says which channel at a glance; the title says it). */

const KNOWN: Record<
  string,
  { readonly letter: string; readonly color: string; readonly name: string }
> = {
  telegram: { letter: "T", color: "#229ed9", name: "Telegram" },
  whatsapp: { letter: "W", color: "#25a244", name: "WhatsApp" },
  widget: { letter: "C", color: "#6b4fbb", name: "Web chat" },
  api: { letter: "A", color: "#5f6b7a", name: "API" },
  email: { letter: "@", color: "#c4661f", name: "E-mail" },
  vk: { letter: "VK", color: "#2787f5", name: "VK" },
  viber: { letter: "V", color: "#7360f2", name: "Viber" },
}

export const channelName = (channel: string) => KNOWN[channel]?.name ?? channel

export function ChannelBadge({ channel }: { readonly channel: string | null | undefined }) {
  if (!channel) return <span class="badge badge-none" aria-hidden="true">·</span>
  const known = KNOWN[channel]
  return (
    <span
      class="badge"
      data-channel={channel}
      title={channelName(channel)}
      style={{ background: known?.color ?? "#8a8f98" }}
    >
      {known?.letter ?? channel.slice(0, 1).toUpperCase()}
    </span>
  )
}
