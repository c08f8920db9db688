/**
 * A simulated WMS's stock and reservation book: whole units on hand and reserved per SKU, and the
 * reservations that hold them (`active`, then `released`, or `shipped` and `delivered`). It never
 * oversells: the check and the booking run in one synchronous call, so two requests cannot both
 * take the last units. A reservation is all-or-nothing unless it allows partial lines, which then
 * fill in order. Beside it: the answers remembered per `Idempotency-Key`, and the timers that ship
 * and deliver later. It knows no HTTP, wire shapes, events or error codes: each simulator maps its
 * own API onto the book and says how each refusal reads. State lives in memory. It does not log.
 * For connectors' simulators, which play the vendor's side in the demo and the tests.
 */
import { canonicalJson } from '../shared/canonical-json.ts'

export interface StockBookLevel {
  sku: string
  onHand: number
  reserved: number
  available: number
}

export interface StockBookLine {
  /** The caller's line id, echoed back when it sent one. */
  lineId?: string
  sku: string
  /** What was asked for. */
  quantity: number
  /** What is held (shipped, once the reservation has shipped); below `quantity` only for a partial reservation. */
  reserved: number
}

export type StockBookStatus = 'active' | 'released' | 'shipped' | 'delivered'

export interface StockBookShipment {
  carrier: string
  trackingNumber: string
  shippedAt: string
  deliveredAt?: string
}

export interface StockBookReservation {
  id: string
  reference: string
  allowPartial: boolean
  lines: StockBookLine[]
  status: StockBookStatus
  createdAt: string
  updatedAt: string
  shipment?: StockBookShipment
}

export interface RequestedStockLine {
  lineId?: string
  sku: string
  quantity: number
}

/** Why the book refused; the simulator turns it into its own error (status, code, message). */
export type StockBookRefusal =
  | { reason: 'unknown_reservation'; id: string }
  | { reason: 'invalid_receipt' }
  /** Each unknown SKU once, in the order the lines name them. */
  | { reason: 'unknown_skus'; skus: string[] }
  /** All-or-nothing and short: per SKU (all its lines together) what was asked and what is free. */
  | { reason: 'insufficient_stock'; shortages: { sku: string; requested: number; available: number }[] }
  /**
   * The status does not allow the change: `not_active` (replace), `shipped` (release), `released`
   * and `nothing_to_ship` (ship), `not_shipped` (deliver).
   */
  | { reason: 'not_active' | 'shipped' | 'released' | 'nothing_to_ship' | 'not_shipped'; id: string; status: StockBookStatus }

export interface StockBookOptions {
  /** On-hand units per SKU at the start, each a non-negative integer. */
  stock: Record<string, number>
  /** The id of the `n`th reservation made (from 1). */
  reservationId(n: number): string
  /** The error thrown for a refusal: the simulator's own, which its routes know how to answer. */
  refusal(refusal: StockBookRefusal): Error
}

/** A reservation after a change, and whether this call changed it (false: it already had). */
export interface StockBookChange {
  reservation: StockBookReservation
  changed: boolean
}

/**
 * The reservations it returns are its own, live objects: change them only through the book, and
 * clone them before handing them out of the simulator.
 */
export interface StockBook {
  level(sku: string): StockBookLevel | undefined
  /** The levels of those `skus` it knows (each once), or of every SKU; sorted by SKU. */
  levels(skus?: Iterable<string>): StockBookLevel[]
  /** A goods receipt: adds on-hand units (creating the SKU); refuses `invalid_receipt` unless a positive integer. */
  receive(sku: string, quantity: number): StockBookLevel
  get(id: string): StockBookReservation | undefined
  /** Like `get`, but refuses `unknown_reservation`. */
  find(id: string): StockBookReservation
  /** Every reservation, in the order they were made. */
  all(): StockBookReservation[]
  /** The reservations under `reference`, in the order they were made. */
  byReference(reference: string): StockBookReservation[]
  /** How many reservations were made: their ids are `reservationId(1)` to `reservationId(count())`. */
  count(): number
  /** Reserves and books `lines` as a new `active` reservation, or refuses and books nothing. */
  reserve(request: { reference: string; allowPartial: boolean; lines: readonly RequestedStockLine[] }): StockBookReservation
  /**
   * Replaces the lines of an active reservation. The units it holds count as free for the new
   * quantities; when they do not fit (all-or-nothing) it refuses and keeps what it had.
   */
  replace(id: string, lines: readonly RequestedStockLine[], allowPartial: boolean): StockBookReservation
  /** Frees an active reservation's units; unchanged when already released; refuses `shipped`. */
  release(id: string): StockBookChange
  /** Takes an active reservation's units off the shelf; unchanged when already shipped or delivered. */
  ship(id: string, shipment: { carrier: string; trackingNumber: string }): StockBookChange
  /** Marks a shipped reservation delivered; unchanged when already delivered. */
  deliver(id: string): StockBookChange
  /**
   * Adds a reservation as given, without checking stock (drift, as a person on the warehouse floor
   * would make it): unknown SKUs are created empty, and an active one books its lines' units.
   */
  add(reservation: { reference: string; allowPartial: boolean; lines: StockBookLine[]; status: StockBookStatus }): StockBookReservation
  /** Replaces what lines hold (`reserved`, and `quantity` when given) per SKU, rebooking an active one's units. */
  setReserved(id: string, changes: readonly { sku: string; reserved: number; quantity?: number }[]): StockBookReservation
}

/**
 * Starts an empty book with `options.stock` on hand.
 *
 * @example
 * const book = createStockBook({ stock: { 'SKU-1': 5 }, reservationId: (n) => `RSV-${n}`, refusal: (r) => new MyRefusal(r) })
 * const reservation = book.reserve({ reference: 'order-1', allowPartial: false, lines: [{ sku: 'SKU-1', quantity: 2 }] })
 * book.ship(reservation.id, { carrier: 'SF Express', trackingNumber: 'SF1' }) // → { reservation, changed: true }
 */
export function createStockBook(options: StockBookOptions): StockBook {
  const levels = new Map<string, { onHand: number; reserved: number }>()
  for (const [sku, onHand] of Object.entries(options.stock)) {
    if (!Number.isInteger(onHand) || onHand < 0) throw new Error(`stock for ${sku} must be a non-negative integer`)
    levels.set(sku, { onHand, reserved: 0 })
  }
  const reservations = new Map<string, StockBookReservation>()
  const idsByReference = new Map<string, Set<string>>()
  let counter = 0

  function level(sku: string): StockBookLevel | undefined {
    const entry = levels.get(sku)
    return entry && { sku, onHand: entry.onHand, reserved: entry.reserved, available: entry.onHand - entry.reserved }
  }

  function find(id: string): StockBookReservation {
    const reservation = reservations.get(id)
    if (!reservation) throw options.refusal({ reason: 'unknown_reservation', id })
    return reservation
  }

  function refuseStatus(reason: 'not_active' | 'shipped' | 'released' | 'nothing_to_ship' | 'not_shipped', reservation: StockBookReservation): Error {
    return options.refusal({ reason, id: reservation.id, status: reservation.status })
  }

  function book(lines: readonly StockBookLine[], sign: 1 | -1): void {
    for (const line of lines) levels.get(line.sku)!.reserved += sign * line.reserved
  }

  /**
   * What `lines` would hold now, counting the units `heldBy` holds as free. All-or-nothing refuses
   * with the SKUs that fall short (a SKU on several lines counts in total); partial fills lines in
   * order. Synchronous, and it books nothing.
   */
  function allocate(lines: readonly RequestedStockLine[], allowPartial: boolean, heldBy?: StockBookReservation): StockBookLine[] {
    const free = new Map<string, number>()
    for (const line of lines) {
      if (free.has(line.sku)) continue
      const current = level(line.sku)
      if (!current) continue
      const own = heldBy?.lines.filter((held) => held.sku === line.sku).reduce((sum, held) => sum + held.reserved, 0) ?? 0
      free.set(line.sku, current.available + own)
    }
    const unknown = [...new Set(lines.map((line) => line.sku))].filter((sku) => !free.has(sku))
    if (unknown.length > 0) throw options.refusal({ reason: 'unknown_skus', skus: unknown })

    if (!allowPartial) {
      const requested = new Map<string, number>()
      for (const line of lines) requested.set(line.sku, (requested.get(line.sku) ?? 0) + line.quantity)
      const shortages = [...requested].flatMap(([sku, quantity]) => (quantity > free.get(sku)! ? [{ sku, requested: quantity, available: free.get(sku)! }] : []))
      if (shortages.length > 0) throw options.refusal({ reason: 'insufficient_stock', shortages })
    }
    return lines.map((line) => {
      const reserved = Math.min(line.quantity, free.get(line.sku)!)
      free.set(line.sku, free.get(line.sku)! - reserved)
      return { ...(line.lineId !== undefined ? { lineId: line.lineId } : {}), sku: line.sku, quantity: line.quantity, reserved }
    })
  }

  function store(fields: Omit<StockBookReservation, 'id' | 'createdAt' | 'updatedAt'>): StockBookReservation {
    counter += 1
    const now = new Date().toISOString()
    const reservation: StockBookReservation = { id: options.reservationId(counter), reference: fields.reference, allowPartial: fields.allowPartial, lines: fields.lines, status: fields.status, createdAt: now, updatedAt: now }
    reservations.set(reservation.id, reservation)
    let ids = idsByReference.get(reservation.reference)
    if (!ids) idsByReference.set(reservation.reference, (ids = new Set()))
    ids.add(reservation.id)
    return reservation
  }

  return {
    level,
    levels(skus) {
      const wanted = skus === undefined ? [...levels.keys()] : [...new Set(skus)].filter((sku) => levels.has(sku))
      return wanted.sort().map((sku) => level(sku)!)
    },
    receive(sku, quantity) {
      if (!Number.isInteger(quantity) || quantity <= 0) throw options.refusal({ reason: 'invalid_receipt' })
      const entry = levels.get(sku)
      if (entry) entry.onHand += quantity
      else levels.set(sku, { onHand: quantity, reserved: 0 })
      return level(sku)!
    },
    get: (id) => reservations.get(id),
    find,
    all: () => [...reservations.values()],
    byReference: (reference) => [...(idsByReference.get(reference) ?? [])].map((id) => reservations.get(id)!),
    count: () => counter,
    reserve(request) {
      const lines = allocate(request.lines, request.allowPartial)
      book(lines, 1)
      return store({ reference: request.reference, allowPartial: request.allowPartial, lines, status: 'active' })
    },
    replace(id, lines, allowPartial) {
      const reservation = find(id)
      if (reservation.status !== 'active') throw refuseStatus('not_active', reservation)
      const allocated = allocate(lines, allowPartial, reservation)
      book(reservation.lines, -1)
      book(allocated, 1)
      reservation.lines = allocated
      reservation.allowPartial = allowPartial
      reservation.updatedAt = new Date().toISOString()
      return reservation
    },
    release(id) {
      const reservation = find(id)
      if (reservation.status === 'shipped' || reservation.status === 'delivered') throw refuseStatus('shipped', reservation)
      if (reservation.status === 'released') return { reservation, changed: false }
      book(reservation.lines, -1)
      reservation.status = 'released'
      reservation.updatedAt = new Date().toISOString()
      return { reservation, changed: true }
    },
    ship(id, shipment) {
      const reservation = find(id)
      if (reservation.status === 'shipped' || reservation.status === 'delivered') return { reservation, changed: false }
      if (reservation.status === 'released') throw refuseStatus('released', reservation)
      if (reservation.lines.every((line) => line.reserved === 0)) throw refuseStatus('nothing_to_ship', reservation)
      for (const line of reservation.lines) {
        const entry = levels.get(line.sku)!
        entry.onHand -= line.reserved
        entry.reserved -= line.reserved
      }
      const now = new Date().toISOString()
      reservation.status = 'shipped'
      reservation.updatedAt = now
      reservation.shipment = { carrier: shipment.carrier, trackingNumber: shipment.trackingNumber, shippedAt: now }
      return { reservation, changed: true }
    },
    deliver(id) {
      const reservation = find(id)
      if (reservation.status === 'delivered') return { reservation, changed: false }
      if (reservation.status !== 'shipped') throw refuseStatus('not_shipped', reservation)
      const now = new Date().toISOString()
      reservation.status = 'delivered'
      reservation.updatedAt = now
      reservation.shipment!.deliveredAt = now
      return { reservation, changed: true }
    },
    add(fields) {
      for (const line of fields.lines) if (!levels.has(line.sku)) levels.set(line.sku, { onHand: 0, reserved: 0 })
      if (fields.status === 'active') book(fields.lines, 1)
      return store(fields)
    },
    setReserved(id, changes) {
      const reservation = find(id)
      const lines = reservation.lines.map((line) => {
        const change = changes.find((c) => c.sku === line.sku)
        return change ? { ...line, reserved: change.reserved, quantity: change.quantity ?? line.quantity } : line
      })
      if (reservation.status === 'active') {
        book(reservation.lines, -1)
        book(lines, 1)
      }
      reservation.lines = lines
      reservation.updatedAt = new Date().toISOString()
      return reservation
    },
  }
}

/** An answer remembered under an `Idempotency-Key`: its status and the exact body sent. */
export interface StoredResponse {
  status: number
  payload: string
}

/**
 * What to do with a request: `replay` the stored answer, refuse a key `reused` with another body,
 * or handle it as `new` and `remember` the answer (a no-op without a key). Nothing may await
 * between `claim` and `remember`, or two requests could both take the key.
 */
export type IdempotencyClaim = { kind: 'new'; remember(response: StoredResponse): void } | { kind: 'replay'; response: StoredResponse } | { kind: 'reused' }

export interface IdempotencyStore {
  /** Bodies compare as canonical JSON, so key order does not matter. */
  claim(key: string | undefined, body: unknown): IdempotencyClaim
}

/**
 * The answers to remember per `Idempotency-Key`. A simulator remembers only what it did: a refusal
 * is not remembered, so the same request may succeed once stock arrives.
 *
 * @example
 * const claim = idempotency.claim(headerValue(request.headers['idempotency-key']), request.body)
 * if (claim.kind === 'replay') return reply.code(claim.response.status).send(claim.response.payload)
 * // … reserve, then: claim.remember({ status: 201, payload })
 */
export function createIdempotencyStore(): IdempotencyStore {
  const byKey = new Map<string, StoredResponse & { fingerprint: string }>()
  const forget = { kind: 'new', remember() {} } as const
  return {
    claim(key, body) {
      if (key === undefined) return forget
      const fingerprint = canonicalJson(body)
      const stored = byKey.get(key)
      if (stored) return stored.fingerprint === fingerprint ? { kind: 'replay', response: { status: stored.status, payload: stored.payload } } : { kind: 'reused' }
      return { kind: 'new', remember: (response) => void byKey.set(key, { fingerprint, status: response.status, payload: response.payload }) }
    },
  }
}

export interface SimulatorTimers {
  /** Runs `run` after `ms`. When it throws, the state moved on (a reservation released or shipped by hand): nothing to do. */
  later(ms: number, run: () => void): void
  /** Cancels every pending run (on close). */
  clear(): void
}

export function createSimulatorTimers(): SimulatorTimers {
  const timers = new Set<NodeJS.Timeout>()
  return {
    later(ms, run) {
      const timer = setTimeout(() => {
        timers.delete(timer)
        try {
          run()
        } catch {
          // The reservation moved on: nothing to do.
        }
      }, ms)
      timers.add(timer)
    },
    clear() {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
    },
  }
}
