/**
 * A windowed list: only the rows in view (and a margin) are in the DOM, so 5,000 conversations or
 * 10,000 messages render as fast as 30.
 *
 * - `rowHeight` set: every row has that height; positions are arithmetic.
 * - Otherwise rows are measured once rendered (and again when they resize, e.g. an image loads);
 *   rows never rendered count as `estimate`. Positions are prefix sums over the heights.
 * - Scroll position is anchored to the first row in view: when rows are added above (an older
 *   page) or a row above changes height, what the operator looks at stays where it is.
 * - `stickToBottom` (a chat): starts at the end and follows new rows while the view is at the
 *   end; scrolled up, it stays put.
 */
import type { ComponentChildren, JSX } from "preact"
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks"

export interface VirtualListProps<T> {
  readonly items: ReadonlyArray<T>
  readonly itemKey: (item: T) => string
  readonly renderItem: (item: T, index: number) => ComponentChildren
  /** Fixed row height in px (no measuring). */
  readonly rowHeight?: number
  /** Height assumed for a row not measured yet (variable rows). Default 80. */
  readonly estimate?: number
  /** Extra px rendered above and below the view. Default 600. */
  readonly overscan?: number
  readonly stickToBottom?: boolean
  /** Called while the view is within 600 px of the top (load older rows). */
  readonly onNearTop?: (() => void) | undefined
  /** Rendered above the first row, inside the scrolled area (e.g. "loading older…"). */
  readonly header?: ComponentChildren
  readonly className?: string
  readonly label?: string
  readonly role?: JSX.AriaRole
}

/** The index of the row containing `y`: the last i with offsets[i] <= y. */
const rowAt = (offsets: Float64Array, count: number, y: number) => {
  let lo = 0
  let hi = count - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (offsets[mid]! <= y) lo = mid
    else hi = mid - 1
  }
  return Math.max(0, lo)
}

const HEADER_HEIGHT = 28

export function VirtualList<T>(props: VirtualListProps<T>) {
  const {
    items,
    itemKey,
    renderItem,
    rowHeight,
    estimate = 80,
    overscan = 600,
    stickToBottom = false,
  } = props
  const scroller = useRef<HTMLDivElement>(null)
  const inner = useRef<HTMLDivElement>(null)
  const heights = useRef(new Map<string, number>())
  const [version, setVersion] = useState(0)
  const [view, setView] = useState({ top: 0, height: 800 })
  const atBottom = useRef(stickToBottom)
  const anchor = useRef<{ key: string; delta: number } | null>(null)
  const headerHeight = props.header !== undefined ? HEADER_HEIGHT : 0

  const keys = useMemo(() => items.map(itemKey), [items, itemKey])
  const indexOf = useMemo(() => new Map(keys.map((k, i) => [k, i] as const)), [keys])

  /** offsets[i]: top of row i; offsets[n]: total height (rows only, below the header). */
  const computeOffsets = () => {
    const n = keys.length
    const offsets = new Float64Array(n + 1)
    if (rowHeight !== undefined) {
      for (let i = 0; i <= n; i++) offsets[i] = i * rowHeight
      return offsets
    }
    const known = heights.current
    let y = 0
    for (let i = 0; i < n; i++) {
      offsets[i] = y
      y += known.get(keys[i]!) ?? estimate
    }
    offsets[n] = y
    return offsets
  }
  const offsets = useMemo(computeOffsets, [keys, version, rowHeight, estimate])
  const offsetsRef = useRef(offsets)
  offsetsRef.current = offsets
  const total = offsets[keys.length]! + headerHeight

  const n = keys.length
  const start = n === 0 ? 0 : rowAt(offsets, n, view.top - headerHeight - overscan)
  const end = n === 0 ? 0 : rowAt(offsets, n, view.top - headerHeight + view.height + overscan) + 1

  /** Remember what is in view: the first visible row and how far it is from the top. */
  const capture = (el: HTMLDivElement) => {
    const o = offsetsRef.current
    const count = o.length - 1
    const top = el.scrollTop - headerHeight
    atBottom.current = el.scrollTop + el.clientHeight >= o[count]! + headerHeight - 4
    if (count === 0) {
      anchor.current = null
      return
    }
    const i = rowAt(o, count, top)
    anchor.current = { key: keys[i] ?? "", delta: o[i]! - top }
  }

  /**
   * Where this component last scrolled to by itself. Its own scroll events keep the anchor: only
   * the operator's scrolling moves it (re-anchoring on our corrections, made while rows above
   * were still estimates, would let the view creep by the estimates' errors).
   */
  const ownScroll = useRef<number | null>(null)
  const scrollTo = (el: HTMLDivElement, top: number) => {
    el.scrollTop = top
    ownScroll.current = el.scrollTop
  }

  const onScroll = () => {
    const el = scroller.current
    if (el === null) return
    if (ownScroll.current === null || Math.abs(el.scrollTop - ownScroll.current) > 1) {
      capture(el)
    }
    ownScroll.current = null
    setView({ top: el.scrollTop, height: el.clientHeight })
  }

  // Measure what was rendered; then keep the anchor (or the bottom) where it was.
  useLayoutEffect(() => {
    const el = scroller.current
    const box = inner.current
    if (el === null || box === null) return
    let changed = false
    if (rowHeight === undefined) {
      for (const child of Array.from(box.children) as Array<HTMLElement>) {
        const key = child.dataset["key"]
        if (key === undefined) continue
        const h = child.offsetHeight
        if (h > 0 && heights.current.get(key) !== h) {
          heights.current.set(key, h)
          changed = true
        }
      }
    }
    const o = changed ? computeOffsets() : offsets
    const height = o[n]! + headerHeight
    box.style.height = `${height}px`
    if (stickToBottom && atBottom.current) {
      const bottom = Math.max(0, height - el.clientHeight)
      if (Math.abs(el.scrollTop - bottom) > 1) scrollTo(el, bottom)
    } else if (anchor.current !== null) {
      const i = indexOf.get(anchor.current.key)
      if (i !== undefined) {
        const wanted = o[i]! - anchor.current.delta + headerHeight
        if (Math.abs(el.scrollTop - wanted) > 1) scrollTo(el, wanted)
      }
    }
    if (changed) {
      offsetsRef.current = o
      setVersion((v) => v + 1)
    } else {
      if (el.scrollTop !== view.top || el.clientHeight !== view.height) {
        setView({ top: el.scrollTop, height: el.clientHeight })
      }
    }
  })

  // Rows that change size later (an image loaded) are measured again.
  const observer = useRef<ResizeObserver | null>(null)
  useEffect(() => {
    if (rowHeight !== undefined || typeof ResizeObserver === "undefined") return
    observer.current = new ResizeObserver((entries) => {
      for (const entry of entries) {
        const key = (entry.target as HTMLElement).dataset["key"]
        const h = (entry.target as HTMLElement).offsetHeight
        if (key !== undefined && h > 0 && heights.current.get(key) !== h) {
          setVersion((v) => v + 1)
          return
        }
      }
    })
    return () => observer.current?.disconnect()
  }, [rowHeight])
  useLayoutEffect(() => {
    const box = inner.current
    const ro = observer.current
    if (box === null || ro === null) return
    const rows = Array.from(box.children)
    for (const row of rows) ro.observe(row)
    return () => {
      for (const row of rows) ro.unobserve(row)
    }
  })

  // The view's own size.
  useEffect(() => {
    const el = scroller.current
    if (el === null || typeof ResizeObserver === "undefined") return
    const ro = new ResizeObserver(() => setView({ top: el.scrollTop, height: el.clientHeight }))
    ro.observe(el)
    return () => ro.disconnect()
  }, [])

  const { onNearTop } = props
  useEffect(() => {
    if (onNearTop !== undefined && n > 0 && view.top < 600) onNearTop()
  }, [view.top, n, onNearTop])

  const rows: Array<ComponentChildren> = []
  for (let i = start; i < Math.min(end, n); i++) {
    const item = items[i]!
    const key = keys[i]!
    const style: JSX.CSSProperties = {
      transform: `translateY(${offsets[i]! + headerHeight}px)`,
    }
    if (rowHeight !== undefined) style.height = `${rowHeight}px`
    rows.push(
      <div key={key} data-key={key} class="vrow" style={style}>
        {renderItem(item, i)}
      </div>,
    )
  }

  return (
    <div
      ref={scroller}
      class={`vlist ${props.className ?? ""}`}
      onScroll={onScroll}
      aria-label={props.label}
      role={props.role}
      tabIndex={0}
    >
      <div ref={inner} class="vlist-inner" style={{ height: `${total}px` }}>
        {props.header !== undefined
          ? <div class="vlist-header" style={{ height: `${HEADER_HEIGHT}px` }}>{props.header}</div>
          : null}
        {rows}
      </div>
    </div>
  )
}
