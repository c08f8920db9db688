/**
 * What reconciliation reads from the demo WMS: reservations by many references at once, and a page
 * of reservations at a time (to find orphans). Reads only; the client knows the URLs.
 */
import type { InventoryCapability } from '../../src/connector-kit/index.ts'
import { demoWmsClient, type DemoWmsSecrets, type DemoWmsSettings } from './client.ts'

type Reads = Required<Pick<InventoryCapability<DemoWmsSettings, DemoWmsSecrets>, 'findManyReservations' | 'listReservations'>>

export const demoWmsReservationReads: Reads = {
  findManyReservations: (ctx, references) => demoWmsClient(ctx).findReservationsByReferences(references),
  listReservations: (ctx, query) => demoWmsClient(ctx).listReservations(query),
}
