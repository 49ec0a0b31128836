// The first user, at first start of a gateway or a hub: created with a generated password, printed once
// (like the admin token) and recorded in the audit log.
import type { AuditLog } from './audit.ts';
import type { UserService } from './service.ts';

export async function announceFirstAdmin(
  users: UserService,
  audit: AuditLog,
  announce: ((line: string) => void) | undefined,
  line: (name: string, password: string) => string,
): Promise<void> {
  const first = await users.ensureFirstAdmin();
  if (!first) return;
  announce?.(line(first.name, first.password));
  audit.record({
    user: 'breakwater',
    role: 'admin',
    action: 'addUser',
    target: `/api/v1/users/${first.name}`,
    detail: { first: true },
    ip: 'local',
    status: 200,
  });
}
