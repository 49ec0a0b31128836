// Which permission each admin API operation needs (src/users/roles.ts says which roles hold it). Every
// route must be listed: the API refuses to start with a route missing here (test/roles.test.ts walks
// every route with every role). The generated API document shows each operation's roles.
import type { Permission } from '../users/roles.ts';

/** Sessions, users, API tokens and the audit log: the same routes on a gateway and on the hub. */
export const USER_ROUTE_PERMISSIONS: Readonly<Record<string, Permission>> = {
  login: 'public',
  getSession: 'public', // answers signedIn: false without credentials
  logout: 'self',
  changeOwnPassword: 'self',
  listUsers: 'admin',
  addUser: 'admin',
  updateUser: 'admin',
  removeUser: 'admin',
  createUserToken: 'admin',
  listUserTokens: 'admin',
  revokeUserToken: 'admin',
  searchAudit: 'admin',
};

export const ROUTE_PERMISSIONS: Readonly<Record<string, Permission>> = {
  // system
  getHealth: 'public',
  getOpenApiDocument: 'public',
  getMetrics: 'read',
  getStatus: 'read',
  getPipeline: 'read',
  // tracking and the queue
  searchMessages: 'read',
  getMessage: 'read',
  listQueue: 'read',
  retryQueuedMessage: 'operate',
  deleteQueuedMessage: 'operate',
  remediateMessages: 'operate',
  // quarantines
  listQuarantines: 'quarantine.read',
  listQuarantinedMessages: 'quarantine.read',
  getQuarantinedMessage: 'quarantine.read',
  getQuarantinedMessageContent: 'quarantine.read',
  listQuarantineRules: 'quarantine.read',
  releaseQuarantinedMessages: 'quarantine.act',
  deleteQuarantinedMessages: 'quarantine.act',
  delayQuarantinedMessages: 'operate',
  moveQuarantinedMessages: 'operate',
  copyQuarantinedMessages: 'operate',
  // Outbreak Filters, reports, alerts
  getOutbreakStatus: 'read',
  listOutbreakRules: 'read',
  updateOutbreakRules: 'admin',
  flushOutbreakRules: 'admin',
  getOutbreakReport: 'read',
  getMailFlowReport: 'read',
  getWebInteractionReport: 'read',
  listAlerts: 'read',
  // TLS reporting (RFC 8460)
  listTlsReports: 'read',
  getTlsReport: 'read',
  // DMARC aggregate reports (RFC 7489)
  listDmarcReports: 'read',
  getDmarcReport: 'read',
  // cloud services
  getCloudStatus: 'read',
  enableCloud: 'admin',
  disableCloud: 'admin',
  registerWithHub: 'admin',
  deregisterFromHub: 'admin',
  sendTelemetry: 'admin',
  // settings
  getConfig: 'admin',
  getConfigSchema: 'admin',
  checkConfig: 'admin',
  saveConfig: 'admin',
  applyConfig: 'admin',
  ...USER_ROUTE_PERMISSIONS,
  // end-user quarantine (recipients use END_USER_OPERATIONS below)
  sendEndUserDigests: 'admin',
};

/**
 * The end-user quarantine's operations: recipients signed in with a link or their mailbox password,
 * with their own session (src/api/enduser-routes.ts), never an administrator's role.
 */
export const END_USER_OPERATIONS = new Set([
  'getEndUserSession',
  'endUserLogin',
  'endUserLogout',
  'requestEndUserLink',
  'listEndUserMessages',
  'getEndUserMessageContent',
  'releaseEndUserMessages',
  'deleteEndUserMessages',
  'allowEndUserSender',
  'removeEndUserSender',
]);

/** Operations with an authentication of their own (the XDR relay module: JWTs), outside the roles. */
export const OWN_AUTH_OPERATIONS = new Set([
  'relayHealth',
  'relayObserve',
  'relayDeliberate',
  'relayRefer',
  'relayRespondObservables',
  'relayRespondTrigger',
]);

/** A product's route table: the permission of each operation, and operations with their own credentials. */
export interface PermissionTable {
  routes: Readonly<Record<string, Permission>>;
  ownAuth: ReadonlySet<string>;
  /** where a missing route is to be added (the message of the start-up error) */
  file: string;
}

export const GATEWAY_PERMISSIONS: PermissionTable = {
  routes: ROUTE_PERMISSIONS,
  ownAuth: new Set([...OWN_AUTH_OPERATIONS, ...END_USER_OPERATIONS]),
  file: 'src/api/permissions.ts',
};
