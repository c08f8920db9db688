/**
 * Tryton's ModelStorage and wizard calls over the client, and the lookups every capability shares
 * (warehouse, company currency), cached per connection settings. Knows method names and parameter
 * order, not URLs.
 */
import { SyncFailure } from '../../src/connector-kit/index.ts'
import { trytonClient, type TrytonClient, type TrytonContext } from './client.ts'
import { trytonConnectorId } from './settings.ts'
import type { Encoded } from './values.ts'

export type Domain = Encoded[]
export type Row = Record<string, unknown> & { id: number }

export interface Models {
  client: TrytonClient
  search(model: string, domain: Domain, options?: { offset?: number; limit?: number; order?: [string, 'ASC' | 'DESC'][] }, extra?: Record<string, Encoded>): Promise<number[]>
  read<T extends Row = Row>(model: string, ids: readonly number[], fields: readonly string[], extra?: Record<string, Encoded>): Promise<T[]>
  searchRead<T extends Row = Row>(model: string, domain: Domain, fields: readonly string[], options?: { offset?: number; limit?: number; order?: [string, 'ASC' | 'DESC'][] }, extra?: Record<string, Encoded>): Promise<T[]>
  create(model: string, values: Record<string, Encoded>[]): Promise<number[]>
  write(model: string, ids: readonly number[], values: Record<string, Encoded>): Promise<void>
  /** A workflow button such as `quote`, `confirm`, `cancel`, `assign_try`: params `[ids]`. */
  button<T = unknown>(model: string, name: string, ids: readonly number[]): Promise<T>
  /**
   * Runs a wizard on one record: create, the start state's view (whose defaults `fill` turns into
   * the form values), the transition, delete. Returns what the transition answered.
   */
  wizard(name: string, record: { model: string; id: number }, fill: (state: string, defaults: Record<string, unknown>) => { form: Record<string, Encoded>; button: string }): Promise<unknown>
  /** The warehouse sales ship from: the setting, else the only warehouse. */
  warehouse(): Promise<{ id: number; code: string }>
  /** The ISO code of the company's currency. */
  companyCurrency(): Promise<{ id: number; code: string }>
}

const warehouses = new WeakMap<object, Promise<{ id: number; code: string }>>()
const currencies = new WeakMap<object, Promise<{ id: number; code: string }>>()

/** Keeps a lookup per settings object, forgetting it when it failed (the next call asks again). */
function cached<T>(store: WeakMap<object, Promise<T>>, owner: object, load: () => Promise<T>): Promise<T> {
  let value = store.get(owner)
  if (!value) {
    value = load()
    store.set(owner, value)
    value.catch(() => store.delete(owner))
  }
  return value
}

export function models(ctx: TrytonContext): Models {
  const client = trytonClient(ctx)
  const order = (value?: [string, 'ASC' | 'DESC'][]): Encoded => (value ? value.map(([field, direction]) => [field, direction]) : null)
  const api: Models = {
    client,
    search: (model, domain, options = {}, extra) => client.call<number[]>(`model.${model}.search`, [domain, options.offset ?? 0, options.limit ?? null, order(options.order)], extra),
    read: (model, ids, fields, extra) => (ids.length ? client.call(`model.${model}.read`, [[...ids], [...fields]], extra) : Promise.resolve([])),
    searchRead: (model, domain, fields, options = {}, extra) =>
      client.call(`model.${model}.search_read`, [domain, options.offset ?? 0, options.limit ?? null, order(options.order), [...fields]], extra),
    create: (model, values) => client.call<number[]>(`model.${model}.create`, [values]),
    write: async (model, ids, values) => {
      if (ids.length) await client.call(`model.${model}.write`, [[...ids], values])
    },
    button: (model, name, ids) => client.call(`model.${model}.${name}`, [[...ids]]),
    async wizard(name, record, fill) {
      const active = { active_model: record.model, active_id: record.id, active_ids: [record.id] }
      const [sessionId, startState] = await client.call<[number, string, string]>(`wizard.${name}.create`, [])
      try {
        const view = (await client.call<{ view?: { defaults?: Record<string, unknown> } }>(`wizard.${name}.execute`, [sessionId, {}, startState], active)) ?? {}
        const { form, button } = fill(startState, view.view?.defaults ?? {})
        return await client.call(`wizard.${name}.execute`, [sessionId, { [startState]: form }, button], active)
      } finally {
        await client.call(`wizard.${name}.delete`, [sessionId]).catch(() => {})
      }
    },
    warehouse: () =>
      cached(warehouses, ctx.settings, async () => {
        const configured = ctx.settings.warehouseId
        const rows = await api.searchRead<Row & { code: string | null }>('stock.location', configured ? [['id', '=', configured], ['type', '=', 'warehouse']] : [['type', '=', 'warehouse']], ['code', 'name'], { limit: 2 })
        const [only, other] = rows
        if (!only || (other && !configured)) {
          throw new SyncFailure(
            'config',
            configured ? `Tryton has no warehouse with id ${configured}` : `Tryton has ${rows.length ? 'several warehouses' : 'no warehouse'}: set warehouseId in the connection settings`,
            { connectorId: trytonConnectorId },
          )
        }
        return { id: only.id, code: only.code ?? String(only.id) }
      }),
    companyCurrency: () =>
      cached(currencies, ctx.settings, async () => {
        const context = await client.context()
        const [company] = await api.read<Row & { 'currency.': { id: number; code: string } | null }>('company.company', [context.company], ['currency.code'])
        const currency = company?.['currency.']
        if (!currency) throw new SyncFailure('config', `Tryton company ${context.company} has no currency`, { connectorId: trytonConnectorId })
        return currency
      }),
  }
  return api
}
