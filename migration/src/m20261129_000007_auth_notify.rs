//! Auth cache invalidation on PostgreSQL (issue 15): triggers on `users`, `memberships`,
//! `organizations`, `api_keys` and `casbin_rule` that `NOTIFY agentdesk_auth` with what
//! changed (`u:<user>`, `m:<org>:<user>`, `o:<org>`, `k:<key>`, `r:<org>`, `*`; the server's
//! `auth::cache::Invalidation`). A NOTIFY issued in a transaction is delivered if and only if
//! it commits, to every node's listener, whichever code path wrote the row. Only columns that
//! can change a decision fire: a `users` or `api_keys` row's `last_used_at`/`last_login_at`
//! does not, nor a no-op `UPDATE` that merely locks an `organizations` row. Nothing on SQLite
//! (one node; the server invalidates in-process after its commits).

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

/// Creates the function and triggers (PostgreSQL only); `down` drops them.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000007_auth_notify"
    }
}

const UP: &str = r#"
CREATE OR REPLACE FUNCTION agentdesk_auth_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r record;
  payload text;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  IF TG_TABLE_NAME = 'users' THEN
    payload := 'u:' || r.id;
  ELSIF TG_TABLE_NAME = 'memberships' THEN
    payload := 'm:' || r.org_id || ':' || r.user_id;
  ELSIF TG_TABLE_NAME = 'organizations' THEN
    payload := 'o:' || r.id;
  ELSIF TG_TABLE_NAME = 'api_keys' THEN
    payload := 'k:' || r.id;
  ELSIF TG_TABLE_NAME = 'casbin_rule' THEN
    -- Role permissions only: memberships have their own trigger, key roles never change.
    IF r.ptype <> 'p' OR r.v0 NOT LIKE 'role:%' THEN RETURN NULL; END IF;
    IF r.v1 LIKE 'org:%' THEN payload := 'r:' || substr(r.v1, 5); ELSE payload := '*'; END IF;
  ELSE
    payload := '*';
  END IF;
  PERFORM pg_notify('agentdesk_auth', payload);
  RETURN NULL;
END
$$;
CREATE TRIGGER agentdesk_auth_users AFTER UPDATE OF token_generation, disabled_at, deleted_at OR DELETE
  ON users FOR EACH ROW EXECUTE FUNCTION agentdesk_auth_notify();
CREATE TRIGGER agentdesk_auth_memberships AFTER INSERT OR UPDATE OR DELETE
  ON memberships FOR EACH ROW EXECUTE FUNCTION agentdesk_auth_notify();
CREATE TRIGGER agentdesk_auth_orgs_update AFTER UPDATE
  ON organizations FOR EACH ROW WHEN (OLD IS DISTINCT FROM NEW) EXECUTE FUNCTION agentdesk_auth_notify();
CREATE TRIGGER agentdesk_auth_orgs_delete AFTER DELETE
  ON organizations FOR EACH ROW EXECUTE FUNCTION agentdesk_auth_notify();
CREATE TRIGGER agentdesk_auth_api_keys AFTER UPDATE OF revoked_at, expires_at, role OR DELETE
  ON api_keys FOR EACH ROW EXECUTE FUNCTION agentdesk_auth_notify();
CREATE TRIGGER agentdesk_auth_casbin_rule AFTER INSERT OR UPDATE OR DELETE
  ON casbin_rule FOR EACH ROW EXECUTE FUNCTION agentdesk_auth_notify();
"#;

const DOWN: &str = r#"
DROP TRIGGER IF EXISTS agentdesk_auth_users ON users;
DROP TRIGGER IF EXISTS agentdesk_auth_memberships ON memberships;
DROP TRIGGER IF EXISTS agentdesk_auth_orgs_update ON organizations;
DROP TRIGGER IF EXISTS agentdesk_auth_orgs_delete ON organizations;
DROP TRIGGER IF EXISTS agentdesk_auth_api_keys ON api_keys;
DROP TRIGGER IF EXISTS agentdesk_auth_casbin_rule ON casbin_rule;
DROP FUNCTION IF EXISTS agentdesk_auth_notify();
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
