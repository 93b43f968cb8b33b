/** A Map that forgets its least recently used entry beyond `capacity` (get and set both use it). */
export class Lru<K, V> {
  readonly #entries = new Map<K, V>()
  constructor(readonly capacity: number) {}
  get(key: K): V | undefined {
    const value = this.#entries.get(key)
    if (value !== undefined) {
      this.#entries.delete(key)
      this.#entries.set(key, value)
    }
    return value
  }
  set(key: K, value: V): void {
    this.#entries.delete(key)
    this.#entries.set(key, value)
    // A Map iterates in insertion order: the first key is the least recently used.
    if (this.#entries.size > this.capacity) {
      this.#entries.delete(this.#entries.keys().next().value as K)
    }
  }
  delete(key: K): void {
    this.#entries.delete(key)
  }
  /** Forget every entry `predicate` holds for (a full scan: for rare events such as a merge). */
  deleteWhere(predicate: (value: V, key: K) => boolean): void {
    for (const [key, value] of this.#entries) {
      if (predicate(value, key)) this.#entries.delete(key)
    }
  }
  clear(): void {
    this.#entries.clear()
  }
}
