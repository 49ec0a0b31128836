// Which permission each hub API operation needs (the roles are the gateway's: src/users/roles.ts).
// Every route must be listed (the hub does not start otherwise); registered gateways' calls carry a
// device JWT and the XDR relay's a relay JWT, outside the roles. test/hub-users.test.ts walks them all.
import { OWN_AUTH_OPERATIONS, USER_ROUTE_PERMISSIONS, type PermissionTable } from '../api/permissions.ts';
import type { Permission } from '../users/roles.ts';

const routes: Record<string, Permission> = {
  hubHealth: 'public',
  getOpenApiDocument: 'public',
  // gateways and registration tokens
  listDevices: 'read',
  removeDevice: 'admin',
  createRegistrationToken: 'admin',
  listRegistrationTokens: 'admin',
  // investigation and response
  searchMessages: 'read',
  getHubReport: 'read',
  investigateObservables: 'investigate',
  listCasebooks: 'investigate',
  createCasebook: 'investigate',
  getCasebook: 'investigate',
  updateCasebook: 'investigate',
  deleteCasebook: 'investigate',
  exportCasebookStix: 'investigate',
  listWatches: 'investigate',
  addWatch: 'investigate',
  listWatchHits: 'investigate',
  removeWatch: 'investigate',
  listTickets: 'investigate',
  openTicket: 'investigate',
  approveWatch: 'operate',
  refuseWatch: 'operate',
  approveTicket: 'operate',
  refuseTicket: 'operate',
  listDeviceActions: 'read',
  requestRemediation: 'operate',
  approveAction: 'operate',
  refuseAction: 'operate',
  listRetroProposals: 'read',
  getRetroProposal: 'read',
  approveRetroProposal: 'operate',
  dismissRetroProposal: 'operate',
  // outbreak rules: analysts read and draft; publishing, editing and retiring change mail flow
  listHubRules: 'read',
  listIntelligenceDrafts: 'read',
  draftHubRule: 'investigate',
  editHubRule: 'operate',
  publishHubRules: 'operate',
  retireHubRule: 'operate',
  listBlockEntries: 'read',
  // TAXII 2.1 (read-only)
  taxiiDiscovery: 'read',
  taxiiApiRoot: 'read',
  taxiiCollections: 'read',
  taxiiCollection: 'read',
  taxiiObjects: 'read',
  taxiiManifest: 'read',
  taxiiObject: 'read',
  requestBlockEntry: 'operate',
  approveBlockEntry: 'operate',
  refuseBlockEntry: 'operate',
  removeBlockEntry: 'operate',
  // sessions, users, audit (the same routes as the gateway's)
  ...USER_ROUTE_PERMISSIONS,
};

export const HUB_PERMISSIONS: PermissionTable = {
  routes,
  ownAuth: new Set([
    // registered gateways (device JWT); registration itself takes a one-time token
    'registerDevice',
    'deregisterSelf',
    'intakeBatch',
    'intakeTelemetry',
    'takeDeviceActions',
    'completeDeviceAction',
    'fetchDeviceBlockList',
    'pollDeviceRules',
    'fetchDeviceRuleBundle',
    'openDeviceEvents',
    'answerLiveQuery',
    // the XDR relay module (relay JWT)
    ...OWN_AUTH_OPERATIONS,
  ]),
  file: 'src/hub/permissions.ts',
};
