// Roles (DESIGN §9) and what each may do. Routes name a permission (src/api/permissions.ts); the API
// checks it on every request, whatever the UI shows.
export const ROLES = ['admin', 'operator', 'analyst', 'helpdesk'] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = {
  /** no credentials: health, the API document */
  public: [],
  /** any signed-in user: their own session and password */
  self: ['admin', 'operator', 'analyst', 'helpdesk'],
  /** see quarantines and what they hold */
  'quarantine.read': ['admin', 'operator', 'analyst', 'helpdesk'],
  /** release and delete held messages */
  'quarantine.act': ['admin', 'operator', 'helpdesk'],
  /** read everything else: status, tracking, reports, rules, alerts, the queue */
  read: ['admin', 'operator', 'analyst'],
  /** (hub) investigate observables, keep casebooks, draft outbreak rules */
  investigate: ['admin', 'operator', 'analyst'],
  /** act on mail: the queue, delay / move / copy in quarantines, mailbox remediation */
  operate: ['admin', 'operator'],
  /** settings, users, the audit log, cloud registration, rule feeds */
  admin: ['admin'],
} as const satisfies Record<string, readonly Role[]>;

export type Permission = keyof typeof PERMISSIONS;

export const ROLE_DESCRIPTIONS: Record<Role, string> = {
  admin: 'everything, including settings, users and the audit log',
  operator: 'quarantine and tracking actions (release, delete, delay, move, copy, queue, remediation) and reading',
  analyst: 'read-only: tracking, quarantines, reports, rules, alerts (and the XDR relay’s investigations)',
  helpdesk: 'quarantines only: see, release and delete held messages',
};

export function allowed(role: Role, permission: Permission): boolean {
  return (PERMISSIONS[permission] as readonly Role[]).includes(role);
}

export function isRole(s: unknown): s is Role {
  return typeof s === 'string' && (ROLES as readonly string[]).includes(s);
}
