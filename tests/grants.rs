//! Keys and invitations never outlive their grantor's rights (`domain::grants`), and revoking
//! a key needs the rights its role holds.
//!
//! Each case makes grants beyond and within what the grantor will keep, changes the grantor's
//! rights, then attacks: the key beyond answers 401 `invalid_token`, the invitation beyond
//! 410 `invitation_revoked`, while the grants within bounds keep working.

use agentdesk::{
    auth::rbac::{self, Role},
    entity::membership,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};

use crate::{
    common::{Cred, TestApp, Urls, User},
    db_tests,
};

db_tests!(
    key_and_invitation_of_a_demoted_creator,
    key_and_invitation_of_a_removed_creator,
    key_and_invitation_of_a_creator_who_leaves,
    key_and_invitation_of_an_erased_creator,
    custom_role_shrunk_under_the_creator,
    custom_role_grown_beyond_the_creator,
    key_made_by_a_key_of_a_demoted_creator,
    acceptance_rechecks_the_inviter,
    revoking_a_key_needs_its_role,
    grants_follow_their_creator_matrix,
    revoking_an_invitation_needs_its_role,
);

/// A key: its id and secret.
struct Key {
    id: String,
    cred: Cred,
}

/// Creates a key with `role` in `org` as `by` (a user token or a key).
async fn key(app: &TestApp, by: &Cred, org: &str, role: &str) -> Key {
    let r = app
        .post(&Urls::api_keys(org))
        .cred(by)
        .json(json!({ "name": format!("{role} key"), "role": role }))
        .expect(201)
        .await;
    Key {
        id: r.body["id"].as_str().unwrap().to_owned(),
        cred: Cred::Bearer(r.body["secret"].as_str().unwrap().to_owned()),
    }
}

/// An invitation: who it is for and its token.
struct Invite {
    to: User,
    token: String,
}

/// Invites a new verified user to `org` with `role` as `by`.
async fn invite(app: &TestApp, by: &Cred, org: &str, role: &str) -> Invite {
    let to = app.user(&format!("invitee-{role}")).await;
    let r = app
        .post(&Urls::invitations(org))
        .cred(by)
        .json(json!({ "email": to.email, "role": role }))
        .expect(201)
        .await;
    Invite {
        to,
        token: r.body["token"].as_str().unwrap().to_owned(),
    }
}

fn user(u: &User) -> Cred {
    Cred::Bearer(u.token.clone())
}

async fn assert_key_works(app: &TestApp, org: &str, k: &Key) {
    app.get(&Urls::org(org)).cred(&k.cred).expect(200).await;
}

async fn assert_key_revoked(app: &TestApp, org: &str, k: &Key) {
    let r = app.get(&Urls::org(org)).cred(&k.cred).expect(401).await;
    r.assert_problem("invalid_token");
    assert!(r.text.contains("revoked"), "{}", r.text);
}

async fn accept(app: &TestApp, inv: &Invite) -> crate::common::Resp {
    app.post(&format!("/v1/invitations/{}/accept", inv.token))
        .token(&inv.to.token)
        .send()
        .await
}

async fn assert_invitation_revoked(app: &TestApp, inv: &Invite) {
    let r = accept(app, inv).await;
    assert_eq!(r.status, 410, "{}", r.text);
    r.assert_problem("invitation_revoked");
}

async fn assert_invitation_good(app: &TestApp, inv: &Invite, role: &str) {
    let r = accept(app, inv).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["role"], role);
}

/// The org's audit events with `action`, newest first.
async fn audit(app: &TestApp, owner: &User, org: &str, action: &str) -> Vec<Value> {
    app.walk_pages(
        &format!("/v1/orgs/{org}/audit-events?action={action}&limit=100"),
        &owner.token,
    )
    .await
}

/// Asserts that exactly the keys `ids` were revoked for `grantor_lost_rights` after
/// `trigger`, and `invitations` invitations with them.
async fn assert_revocations_audited(
    app: &TestApp,
    owner: &User,
    org: &str,
    trigger: &str,
    ids: &[&str],
    invitations: usize,
) {
    let keys = audit(app, owner, org, "api_key.revoked").await;
    let mut got: Vec<&str> = keys
        .iter()
        .filter(|e| e["details"]["reason"] == "grantor_lost_rights")
        .map(|e| {
            assert_eq!(e["details"]["trigger"], trigger, "{e}");
            e["target"]["id"].as_str().unwrap()
        })
        .collect();
    let mut want = ids.to_vec();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{keys:?}");
    let invs = audit(app, owner, org, "invitation.revoked").await;
    let revoked = invs
        .iter()
        .filter(|e| e["details"]["reason"] == "grantor_lost_rights")
        .count();
    assert_eq!(revoked, invitations, "{invs:?}");
}

/// An org with an owner and an admin, and what the admin granted: an admin key and an
/// invitation as admin (beyond a viewer), a viewer key and an invitation as viewer (within).
struct Fixture {
    owner: User,
    org: String,
    admin: User,
    strong_key: Key,
    weak_key: Key,
    strong_inv: Invite,
    weak_inv: Invite,
}

async fn fixture(app: &TestApp) -> Fixture {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Grants").await;
    let admin = app.user("admin").await;
    app.add_member(&owner, &org, &admin, "admin").await;
    let by = user(&admin);
    Fixture {
        strong_key: key(app, &by, &org, "admin").await,
        weak_key: key(app, &by, &org, "viewer").await,
        strong_inv: invite(app, &by, &org, "admin").await,
        weak_inv: invite(app, &by, &org, "viewer").await,
        owner,
        org,
        admin,
    }
}

/// After the admin lost every right in the org: everything they granted is revoked, and the
/// removed admin's key cannot invite them back; the owner's own grants still work.
async fn assert_all_revoked(app: &TestApp, f: &Fixture, trigger: &str) {
    let owners_key = key(app, &user(&f.owner), &f.org, "admin").await;
    let owners_inv = invite(app, &user(&f.owner), &f.org, "admin").await;
    let reinvite = app
        .post(&Urls::invitations(&f.org))
        .cred(&f.strong_key.cred)
        .json(json!({ "email": f.admin.email, "role": "admin" }))
        .expect(401)
        .await;
    reinvite.assert_problem("invalid_token");
    assert_key_revoked(app, &f.org, &f.strong_key).await;
    assert_key_revoked(app, &f.org, &f.weak_key).await;
    assert_invitation_revoked(app, &f.strong_inv).await;
    assert_invitation_revoked(app, &f.weak_inv).await;
    assert_key_works(app, &f.org, &owners_key).await;
    assert_invitation_good(app, &owners_inv, "admin").await;
    assert_revocations_audited(
        app,
        &f.owner,
        &f.org,
        trigger,
        &[&f.strong_key.id, &f.weak_key.id],
        2,
    )
    .await;
}

async fn key_and_invitation_of_a_demoted_creator(app: TestApp) {
    let f = fixture(&app).await;
    assert_key_works(&app, &f.org, &f.strong_key).await;
    app.put(&format!("/v1/orgs/{}/members/{}", f.org, f.admin.id))
        .token(&f.owner.token)
        .json(json!({ "role": "viewer" }))
        .expect(200)
        .await;
    // The admin key cannot act (nor make the demoted admin admin again).
    let r = app
        .put(&format!("/v1/orgs/{}/members/{}", f.org, f.admin.id))
        .cred(&f.strong_key.cred)
        .json(json!({ "role": "admin" }))
        .expect(401)
        .await;
    r.assert_problem("invalid_token");
    assert_key_revoked(&app, &f.org, &f.strong_key).await;
    assert_invitation_revoked(&app, &f.strong_inv).await;
    // What a viewer may grant stays.
    assert_key_works(&app, &f.org, &f.weak_key).await;
    assert_invitation_good(&app, &f.weak_inv, "viewer").await;
    let revoked = audit(&app, &f.owner, &f.org, "api_key.revoked").await;
    assert_eq!(
        revoked[0]["details"]["missing_permission"],
        rbac::AGENTS_WRITE
    );
    assert_eq!(revoked[0]["details"]["grantor_type"], "user");
    assert_eq!(revoked[0]["actor"]["id"], f.owner.id.as_str());
    assert_revocations_audited(
        &app,
        &f.owner,
        &f.org,
        "member.updated",
        &[&f.strong_key.id],
        1,
    )
    .await;
}

async fn key_and_invitation_of_a_removed_creator(app: TestApp) {
    let f = fixture(&app).await;
    app.delete(&format!("/v1/orgs/{}/members/{}", f.org, f.admin.id))
        .token(&f.owner.token)
        .expect(204)
        .await;
    assert_all_revoked(&app, &f, "member.removed").await;
}

async fn key_and_invitation_of_a_creator_who_leaves(app: TestApp) {
    let f = fixture(&app).await;
    app.delete(&format!("/v1/me/memberships/{}", f.org))
        .token(&f.admin.token)
        .expect(204)
        .await;
    assert_all_revoked(&app, &f, "member.left").await;
}

async fn key_and_invitation_of_an_erased_creator(app: TestApp) {
    let f = fixture(&app).await;
    // A second org of the admin's: its grants go too.
    let other_owner = app.user("other").await;
    let other = app.org(&other_owner, "Other").await;
    app.add_member(&other_owner, &other, &f.admin, "admin")
        .await;
    let elsewhere = key(&app, &user(&f.admin), &other, "viewer").await;
    app.delete("/v1/me").token(&f.admin.token).expect(204).await;
    assert_key_revoked(&app, &other, &elsewhere).await;
    assert_all_revoked(&app, &f, "user.erased").await;
    // The revocations are the erased user's acts: pseudonymised like the rest.
    let revoked = audit(&app, &f.owner, &f.org, "api_key.revoked").await;
    assert_eq!(
        revoked[0]["actor"]["type"], "erased_user",
        "{:?}",
        revoked[0]
    );
}

/// A custom role `keeper` (viewer's permissions plus managing members, keys and agents), and
/// `builder` (reads the org, writes agents).
const KEEPER: &[&str] = &[
    rbac::ORGS_READ,
    rbac::MEMBERS_READ,
    rbac::MEMBERS_WRITE,
    rbac::AGENTS_READ,
    rbac::AGENTS_WRITE,
    rbac::SESSIONS_READ,
    rbac::ROLES_READ,
    rbac::API_KEYS_READ,
    rbac::API_KEYS_WRITE,
];
const BUILDER: &[&str] = &[rbac::ORGS_READ, rbac::AGENTS_READ, rbac::AGENTS_WRITE];

async fn put_role(app: &TestApp, owner: &User, org: &str, name: &str, perms: &[&str]) {
    let url = format!("{}/{name}", Urls::roles(org));
    let current = app.get(&url).token(&owner.token).expect(200).await;
    let etag = current.header("etag").unwrap().to_owned();
    app.put(&url)
        .token(&owner.token)
        .header("if-match", &etag)
        .json(json!({ "permissions": perms }))
        .expect(200)
        .await;
}

async fn custom_role_shrunk_under_the_creator(app: TestApp) {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Shrink").await;
    app.custom_role(&owner, &org, "keeper", KEEPER).await;
    app.custom_role(&owner, &org, "builder", BUILDER).await;
    let keeper = app.user("keeper").await;
    app.add_member(&owner, &org, &keeper, "keeper").await;
    let by = user(&keeper);
    let strong_key = key(&app, &by, &org, "builder").await;
    let weak_key = key(&app, &by, &org, "viewer").await;
    let own_role_key = key(&app, &by, &org, "keeper").await;
    let strong_inv = invite(&app, &by, &org, "builder").await;
    let weak_inv = invite(&app, &by, &org, "viewer").await;
    // The owner's builder key is bounded by the owner, not by keepers.
    let owners_key = key(&app, &user(&owner), &org, "builder").await;

    let shrunk: Vec<&str> = KEEPER
        .iter()
        .copied()
        .filter(|p| *p != rbac::AGENTS_WRITE)
        .collect();
    put_role(&app, &owner, &org, "keeper", &shrunk).await;

    assert_key_revoked(&app, &org, &strong_key).await;
    assert_invitation_revoked(&app, &strong_inv).await;
    assert_key_works(&app, &org, &weak_key).await;
    // A key with the creator's own role shrinks with it: still covered.
    assert_key_works(&app, &org, &own_role_key).await;
    assert_key_works(&app, &org, &owners_key).await;
    assert_invitation_good(&app, &weak_inv, "viewer").await;
    assert_revocations_audited(&app, &owner, &org, "role.updated", &[&strong_key.id], 1).await;
}

async fn custom_role_grown_beyond_the_creator(app: TestApp) {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Grow").await;
    app.custom_role(&owner, &org, "builder", BUILDER).await;
    let admin = app.user("admin").await;
    app.add_member(&owner, &org, &admin, "admin").await;
    let by = user(&admin);
    let grown_key = key(&app, &by, &org, "builder").await;
    let weak_key = key(&app, &by, &org, "viewer").await;
    let grown_inv = invite(&app, &by, &org, "builder").await;
    let weak_inv = invite(&app, &by, &org, "viewer").await;
    let owners_key = key(&app, &user(&owner), &org, "builder").await;
    let owners_inv = invite(&app, &user(&owner), &org, "builder").await;

    // `orgs:delete` is the owner's alone: an admin's builder key would now exceed its maker.
    let mut grown = BUILDER.to_vec();
    grown.push(rbac::ORGS_DELETE);
    put_role(&app, &owner, &org, "builder", &grown).await;

    assert_key_revoked(&app, &org, &grown_key).await;
    let r = app
        .delete(&Urls::org(&org))
        .cred(&grown_key.cred)
        .expect(401)
        .await;
    r.assert_problem("invalid_token");
    assert_invitation_revoked(&app, &grown_inv).await;
    assert_key_works(&app, &org, &weak_key).await;
    assert_key_works(&app, &org, &owners_key).await;
    assert_invitation_good(&app, &weak_inv, "viewer").await;
    assert_invitation_good(&app, &owners_inv, "builder").await;
    let revoked = audit(&app, &owner, &org, "api_key.revoked").await;
    assert_eq!(
        revoked[0]["details"]["missing_permission"],
        rbac::ORGS_DELETE
    );
    assert_revocations_audited(&app, &owner, &org, "role.updated", &[&grown_key.id], 1).await;
}

async fn key_made_by_a_key_of_a_demoted_creator(app: TestApp) {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Chain").await;
    let admin = app.user("admin").await;
    app.add_member(&owner, &org, &admin, "admin").await;
    // admin → parent (admin key) → child (admin key) → grandchild (viewer key); the parent
    // and the child invite too.
    let parent = key(&app, &user(&admin), &org, "admin").await;
    let child = key(&app, &parent.cred, &org, "admin").await;
    let grandchild = key(&app, &child.cred, &org, "viewer").await;
    let parent_inv = invite(&app, &parent.cred, &org, "viewer").await;
    let child_inv = invite(&app, &child.cred, &org, "admin").await;
    // Within bounds: the admin's own viewer key; a chain under the owner.
    let direct = key(&app, &user(&admin), &org, "viewer").await;
    let owners_key = key(&app, &user(&owner), &org, "admin").await;
    let owners_child = key(&app, &owners_key.cred, &org, "admin").await;
    for k in [&child, &grandchild] {
        assert_key_works(&app, &org, k).await;
    }

    app.put(&format!("/v1/orgs/{org}/members/{}", admin.id))
        .token(&owner.token)
        .json(json!({ "role": "viewer" }))
        .expect(200)
        .await;

    // The parent exceeds the demoted admin; everything it made lost its grantor.
    for k in [&parent, &child, &grandchild] {
        assert_key_revoked(&app, &org, k).await;
    }
    assert_invitation_revoked(&app, &parent_inv).await;
    assert_invitation_revoked(&app, &child_inv).await;
    assert_key_works(&app, &org, &direct).await;
    assert_key_works(&app, &org, &owners_key).await;
    assert_key_works(&app, &org, &owners_child).await;
    let revoked = audit(&app, &owner, &org, "api_key.revoked").await;
    let gone: Vec<&Value> = revoked
        .iter()
        .filter(|e| e["details"]["grantor_type"] == "api_key")
        .collect();
    assert_eq!(gone.len(), 2, "{revoked:?}");
    assert!(gone.iter().all(|e| e["details"]["grantor_gone"] == true));
    assert_revocations_audited(
        &app,
        &owner,
        &org,
        "member.updated",
        &[&parent.id, &child.id, &grandchild.id],
        2,
    )
    .await;

    // Revoking a key takes what it made with it, at once.
    let owners_grandchild = key(&app, &owners_child.cred, &org, "viewer").await;
    app.delete(&format!("{}/{}", Urls::api_keys(&org), owners_key.id))
        .token(&owner.token)
        .expect(204)
        .await;
    assert_key_revoked(&app, &org, &owners_child).await;
    assert_key_revoked(&app, &org, &owners_grandchild).await;
    assert_key_works(&app, &org, &direct).await;
}

async fn acceptance_rechecks_the_inviter(app: TestApp) {
    let f = fixture(&app).await;
    // A change of rights that bypassed the API (so nothing re-checked the grants): the
    // acceptance itself refuses what the inviter can no longer grant.
    let db = app.db().await;
    membership::Entity::update_many()
        .col_expr(membership::Column::Role, Expr::value(Role::Viewer.as_str()))
        .filter(membership::Column::UserId.eq(f.admin.id.parse::<uuid::Uuid>().unwrap()))
        .exec(&db)
        .await
        .unwrap();
    assert_invitation_revoked(&app, &f.strong_inv).await;
    // Revoked for good, and audited once.
    assert_invitation_revoked(&app, &f.strong_inv).await;
    let invs = audit(&app, &f.owner, &f.org, "invitation.revoked").await;
    assert_eq!(invs.len(), 1, "{invs:?}");
    assert_eq!(invs[0]["details"]["trigger"], "invitation.accept");
    assert_invitation_good(&app, &f.weak_inv, "viewer").await;
}

/// Item 6: revoking a key needs every permission of its role.
async fn revoking_a_key_needs_its_role(app: TestApp) {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Revoke").await;
    let admin = app.user("admin").await;
    app.add_member(&owner, &org, &admin, "admin").await;
    // `clerk` manages keys and nothing else.
    let clerk_perms = [rbac::ORGS_READ, rbac::API_KEYS_READ, rbac::API_KEYS_WRITE];
    app.custom_role(&owner, &org, "clerk", &clerk_perms).await;
    let clerk = app.user("clerk").await;
    app.add_member(&owner, &org, &clerk, "clerk").await;

    let admin_key = key(&app, &user(&owner), &org, "admin").await;
    let owner_key = key(&app, &user(&owner), &org, "owner").await;
    // (An operator cannot make keys: its key comes from the owner.)
    let operator_key = key(&app, &user(&owner), &org, "operator").await;
    let clerk_key = key(&app, &user(&clerk), &org, "clerk").await;
    let revoke = |k: &Key| format!("{}/{}", Urls::api_keys(&org), k.id);

    // An operator key cannot revoke at all; a clerk (member or key) holds `api_keys:write`
    // but not the admin key's role: 403 naming the first permission it lacks.
    let r = app
        .delete(&revoke(&admin_key))
        .cred(&operator_key.cred)
        .expect(403)
        .await;
    r.assert_problem("permission_denied");
    assert_eq!(r.body["missing_permission"], rbac::API_KEYS_WRITE);
    for by in [&user(&clerk), &clerk_key.cred] {
        let r = app.delete(&revoke(&admin_key)).cred(by).expect(403).await;
        r.assert_problem("permission_denied");
        assert_eq!(r.body["missing_permission"], rbac::AGENTS_READ);
    }
    // An owner key needs `members:owner`, which an admin lacks.
    let r = app
        .delete(&revoke(&owner_key))
        .token(&admin.token)
        .expect(403)
        .await;
    assert_eq!(r.body["missing_permission"], rbac::MEMBERS_OWNER);
    assert_key_works(&app, &org, &admin_key).await;
    assert_key_works(&app, &org, &owner_key).await;

    // The clerk may revoke what its role covers, and itself; not an operator's key.
    let r = app
        .delete(&revoke(&operator_key))
        .cred(&user(&clerk))
        .expect(403)
        .await;
    assert_eq!(r.body["missing_permission"], rbac::AGENTS_READ);
    let viewer_key = key(&app, &user(&owner), &org, "viewer").await;
    let r = app
        .delete(&revoke(&viewer_key))
        .cred(&clerk_key.cred)
        .expect(403)
        .await;
    // (viewer holds `agents:read`, which a clerk lacks.)
    assert_eq!(r.body["missing_permission"], rbac::AGENTS_READ);
    let other_clerk_key = key(&app, &user(&owner), &org, "clerk").await;
    app.delete(&revoke(&other_clerk_key))
        .cred(&clerk_key.cred)
        .expect(204)
        .await;
    assert_key_revoked(&app, &org, &other_clerk_key).await;
    app.delete(&revoke(&clerk_key))
        .cred(&clerk_key.cred)
        .expect(204)
        .await;
    assert_key_revoked(&app, &org, &clerk_key).await;

    // An admin revokes the admin key; an owner the owner key; a key itself.
    app.delete(&revoke(&admin_key))
        .token(&admin.token)
        .expect(204)
        .await;
    assert_key_revoked(&app, &org, &admin_key).await;
    app.delete(&revoke(&owner_key))
        .token(&owner.token)
        .expect(204)
        .await;
    let admins_own = key(&app, &user(&admin), &org, "admin").await;
    app.delete(&revoke(&admins_own))
        .cred(&admins_own.cred)
        .expect(204)
        .await;
    assert_key_revoked(&app, &org, &admins_own).await;
}

/// The role × change matrix: an admin grants a key and an invitation of every built-in role
/// it may grant and of a custom role; then the admin is demoted to operator, demoted to
/// viewer, or removed. Whatever the admin's new role no longer covers answers 401 (key) or
/// 410 (invitation); the rest keeps working. Expected outcomes come from the permission table.
async fn grants_follow_their_creator_matrix(app: TestApp) {
    const CUSTOM: &[&str] = &[rbac::ORGS_READ, rbac::AGENTS_READ, rbac::SESSIONS_WRITE];
    let granted = ["admin", "operator", "viewer", "runner"];
    let perms_of = |role: &str| -> Vec<&'static str> {
        match Role::parse(role) {
            Some(r) => r.permissions().to_vec(),
            None => CUSTOM.to_vec(),
        }
    };
    for change in ["operator", "viewer", "removed"] {
        let owner = app.user("owner").await;
        let org = app.org(&owner, "Matrix").await;
        app.custom_role(&owner, &org, "runner", CUSTOM).await;
        let admin = app.user("admin").await;
        app.add_member(&owner, &org, &admin, "admin").await;
        let mut made = Vec::new();
        for role in granted {
            let k = key(&app, &user(&admin), &org, role).await;
            let inv = invite(&app, &user(&admin), &org, role).await;
            made.push((role, k, inv));
        }
        let member = format!("/v1/orgs/{org}/members/{}", admin.id);
        let held: Vec<&str> = if change == "removed" {
            app.delete(&member).token(&owner.token).expect(204).await;
            Vec::new()
        } else {
            app.put(&member)
                .token(&owner.token)
                .json(json!({ "role": change }))
                .expect(200)
                .await;
            perms_of(change)
        };
        for (role, k, inv) in &made {
            let covered = perms_of(role).iter().all(|p| held.contains(p));
            if covered {
                assert_key_works(&app, &org, k).await;
                assert_invitation_good(&app, inv, role).await;
            } else {
                assert_key_revoked(&app, &org, k).await;
                assert_invitation_revoked(&app, inv).await;
            }
        }
    }
}

/// Withdrawing an invitation takes what taking its role from a member takes: an admin cannot
/// withdraw the owner's invitation of a new owner, a `members:write`-only role cannot withdraw
/// a viewer's; anyone may withdraw their own.
async fn revoking_an_invitation_needs_its_role(app: TestApp) {
    let owner = app.user("owner").await;
    let org = app.org(&owner, "Withdraw").await;
    let admin = app.user("admin").await;
    app.add_member(&owner, &org, &admin, "admin").await;
    let usher_perms = [rbac::ORGS_READ, rbac::MEMBERS_READ, rbac::MEMBERS_WRITE];
    app.custom_role(&owner, &org, "usher", &usher_perms).await;
    let usher = app.user("usher").await;
    app.add_member(&owner, &org, &usher, "usher").await;
    let id_of = |r: &crate::common::Resp| r.body["id"].as_str().unwrap().to_owned();
    let invite_as = |by: &User, role: &'static str| {
        let app = &app;
        let url = Urls::invitations(&org);
        let token = by.token.clone();
        async move {
            app.post(&url)
                .token(&token)
                .json(json!({ "email": format!("{role}@example.com"), "role": role }))
                .expect(201)
                .await
        }
    };
    let withdraw = |id: &str| format!("{}/{id}", Urls::invitations(&org));
    let new_owner = id_of(&invite_as(&owner, "owner").await);
    let viewer = id_of(&invite_as(&owner, "viewer").await);
    let own = id_of(&invite_as(&usher, "usher").await);

    let r = app
        .delete(&withdraw(&new_owner))
        .token(&admin.token)
        .expect(403)
        .await;
    r.assert_problem("permission_denied");
    assert_eq!(r.body["missing_permission"], rbac::MEMBERS_OWNER);
    let r = app
        .delete(&withdraw(&viewer))
        .token(&usher.token)
        .expect(403)
        .await;
    assert_eq!(r.body["missing_permission"], rbac::AGENTS_READ);
    // Their own invitation, and what their role covers, they may withdraw.
    app.delete(&withdraw(&own))
        .token(&usher.token)
        .expect(204)
        .await;
    app.delete(&withdraw(&viewer))
        .token(&admin.token)
        .expect(204)
        .await;
    app.delete(&withdraw(&new_owner))
        .token(&owner.token)
        .expect(204)
        .await;
    let pending = app
        .get(&format!("{}?limit=50", Urls::invitations(&org)))
        .token(&owner.token)
        .expect(200)
        .await;
    for id in [&new_owner, &viewer, &own] {
        let inv = pending.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id.as_str())
            .unwrap();
        assert_eq!(inv["status"], "revoked", "{inv}");
    }
}
