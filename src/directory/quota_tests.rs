//! Quotas, usage and reservations, proved on every backend (`directory::tests::quota::…`).

use chrono::TimeDelta;

use super::*;

on_every_backend!(
    quotas_are_stored_and_unlimited_by_default,
    reservations_are_cut_to_the_room_left_and_refused_below_the_minimum,
    settling_turns_a_reservation_into_usage_and_release_frees_it,
    expired_reservations_stop_counting,
    a_user_quota_holds_besides_the_tenant_quota,
    concurrent_reservations_never_exceed_the_quota,
);

/// A tenant `acme` with user `alice`; their ids.
async fn setup(dir: &Fresh) -> (i64, i64) {
    let tenant = dir.create_tenant("acme").await.unwrap();
    let new = NewUser { username: "alice".into(), password_hash: "x".into(), home: "/".into() };
    let user = dir.create_user(tenant.id, new).await.unwrap();
    (tenant.id, user.id)
}

fn request(ids: (i64, i64), min: i64, want: i64, files: i64) -> ReservationRequest {
    ReservationRequest {
        tenant_id: ids.0,
        user_id: ids.1,
        id: None,
        min_bytes: min,
        want_bytes: want,
        files,
        expires_at: Utc::now() + TimeDelta::minutes(10),
    }
}

fn limit(bytes: Option<i64>, files: Option<i64>) -> Quota {
    Quota { max_bytes: bytes, max_files: files }
}

async fn quotas_are_stored_and_unlimited_by_default(dir: &Fresh) {
    let (tenant, user) = setup(dir).await;
    assert_eq!(dir.tenant_account(tenant, Utc::now()).await.unwrap(), Account::default());
    dir.set_tenant_quota(tenant, &limit(Some(1000), None)).await.unwrap();
    dir.set_user_quota(tenant, "alice", &limit(None, Some(5))).await.unwrap();
    assert_eq!(dir.tenant_account(tenant, Utc::now()).await.unwrap().quota, limit(Some(1000), None));
    assert_eq!(dir.user_account(user, Utc::now()).await.unwrap().quota, limit(None, Some(5)));
    assert!(matches!(dir.set_user_quota(tenant, "bob", &limit(None, None)).await, Err(DirectoryError::NotFound)));
    assert!(matches!(dir.set_tenant_quota(tenant, &limit(Some(-1), None)).await, Err(DirectoryError::Invalid(_))));
}

async fn reservations_are_cut_to_the_room_left_and_refused_below_the_minimum(dir: &Fresh) {
    let ids = setup(dir).await;
    dir.set_tenant_quota(ids.0, &limit(Some(1000), Some(2))).await.unwrap();
    let first = dir.reserve(&request(ids, 0, 600, 1), Utc::now()).await.unwrap().unwrap();
    assert_eq!(first.bytes, 600);
    let second = dir.reserve(&request(ids, 0, 600, 1), Utc::now()).await.unwrap().unwrap();
    assert_eq!(second.bytes, 400, "cut to the room left");
    assert_eq!(dir.reserve(&request(ids, 1, 1, 0), Utc::now()).await.unwrap(), None, "no bytes left");
    assert_eq!(dir.reserve(&request(ids, 0, 0, 1), Utc::now()).await.unwrap(), None, "no files left");
    // Growing a reservation counts the others, not itself.
    let grown = ReservationRequest { id: Some(first.id), ..request(ids, 600, 900, 1) };
    assert_eq!(dir.reserve(&grown, Utc::now()).await.unwrap(), Some(Grant { id: first.id, bytes: 600 }));
    let account = dir.tenant_account(ids.0, Utc::now()).await.unwrap();
    assert_eq!(account.reserved, Usage { bytes: 1000, files: 2 });
    assert_eq!(dir.user_account(ids.1, Utc::now()).await.unwrap().reserved, Usage { bytes: 1000, files: 2 });
}

async fn settling_turns_a_reservation_into_usage_and_release_frees_it(dir: &Fresh) {
    let ids = setup(dir).await;
    dir.set_tenant_quota(ids.0, &limit(Some(1000), None)).await.unwrap();
    let kept = dir.reserve(&request(ids, 0, 600, 1), Utc::now()).await.unwrap().unwrap();
    let dropped = dir.reserve(&request(ids, 0, 400, 1), Utc::now()).await.unwrap().unwrap();
    dir.settle(ids.0, ids.1, Some(kept.id), Usage { bytes: 500, files: 1 }).await.unwrap();
    dir.release(dropped.id).await.unwrap();
    let account = dir.tenant_account(ids.0, Utc::now()).await.unwrap();
    assert_eq!((account.used, account.reserved), (Usage { bytes: 500, files: 1 }, Usage::default()));
    assert_eq!(dir.user_account(ids.1, Utc::now()).await.unwrap().used, Usage { bytes: 500, files: 1 });
    // A delete subtracts; usage never goes below zero.
    dir.settle(ids.0, ids.1, None, Usage { bytes: -800, files: -1 }).await.unwrap();
    assert_eq!(dir.tenant_account(ids.0, Utc::now()).await.unwrap().used, Usage::default());
    dir.set_usage(ids.0, None, Usage { bytes: 7, files: 1 }).await.unwrap();
    dir.set_usage(ids.0, Some(ids.1), Usage { bytes: 3, files: 1 }).await.unwrap();
    assert_eq!(dir.tenant_account(ids.0, Utc::now()).await.unwrap().used, Usage { bytes: 7, files: 1 });
    assert_eq!(dir.user_account(ids.1, Utc::now()).await.unwrap().used, Usage { bytes: 3, files: 1 });
}

async fn expired_reservations_stop_counting(dir: &Fresh) {
    let ids = setup(dir).await;
    dir.set_tenant_quota(ids.0, &limit(Some(1000), None)).await.unwrap();
    let now = Utc::now();
    let lost = ReservationRequest { expires_at: now + TimeDelta::seconds(5), ..request(ids, 1000, 1000, 1) };
    dir.reserve(&lost, now).await.unwrap().unwrap();
    assert_eq!(dir.reserve(&request(ids, 1, 1, 0), now).await.unwrap(), None);
    let later = now + TimeDelta::seconds(6);
    assert_eq!(dir.tenant_account(ids.0, later).await.unwrap().reserved, Usage::default());
    let grant = dir.reserve(&request(ids, 1000, 1000, 1), later).await.unwrap();
    assert_eq!(grant.map(|g| g.bytes), Some(1000));
}

async fn a_user_quota_holds_besides_the_tenant_quota(dir: &Fresh) {
    let ids = setup(dir).await;
    let bob = dir
        .create_user(ids.0, NewUser { username: "bob".into(), password_hash: "x".into(), home: "/".into() })
        .await
        .unwrap();
    dir.set_tenant_quota(ids.0, &limit(Some(1000), None)).await.unwrap();
    dir.set_user_quota(ids.0, "alice", &limit(Some(100), Some(1))).await.unwrap();
    assert_eq!(dir.reserve(&request(ids, 0, 500, 1), Utc::now()).await.unwrap().map(|g| g.bytes), Some(100));
    assert_eq!(dir.reserve(&request(ids, 0, 1, 1), Utc::now()).await.unwrap(), None, "alice's one file");
    let grant = dir.reserve(&request((ids.0, bob.id), 0, 2000, 1), Utc::now()).await.unwrap();
    assert_eq!(grant.map(|g| g.bytes), Some(900), "bob is bound by the tenant only");
}

async fn concurrent_reservations_never_exceed_the_quota(dir: &Fresh) {
    let ids = setup(dir).await;
    dir.set_tenant_quota(ids.0, &limit(Some(1000), None)).await.unwrap();
    // Two instances on the same database, 40 uploads asking for 100 bytes each and storing them.
    let instances = [dir.reopen().await, dir.reopen().await];
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let dir = instances[i % 2].clone();
            tokio::spawn(async move {
                let grant = dir.reserve(&request(ids, 100, 100, 1), Utc::now()).await.unwrap()?;
                dir.settle(ids.0, ids.1, Some(grant.id), Usage { bytes: 100, files: 1 }).await.unwrap();
                Some(())
            })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        stored += task.await.unwrap().map_or(0, |()| 1);
    }
    assert_eq!(stored, 10);
    let account = dir.tenant_account(ids.0, Utc::now()).await.unwrap();
    assert_eq!((account.used, account.reserved), (Usage { bytes: 1000, files: 10 }, Usage::default()));
}
