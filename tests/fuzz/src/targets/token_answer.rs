//! IdP B's token endpoint answers (client_credentials) as the engine reads them, and the times
//! derived from the backend token under several clocks and settings.

use tokenbridge_core::fuzzing::token_answer;

/// (now, default TTL, refresh margin, minimum remaining life), as configuration allows them.
const SETTINGS: [(i64, i64, i64, i64); 4] = [
    (1_800_000_000, 300, 30, 60),
    (1_800_000_000, 1, 0, 0),
    (0, 86_400, 3_600, 3_600),
    (i64::MAX - 1_000, 300, 30, 60),
];

/// The checks of the target on one input; panics on a broken invariant.
pub fn check(data: &[u8]) {
    for status in [200, 400, 401, 503] {
        for (now, default_ttl, margin, min_remaining) in SETTINGS {
            let Ok(t) = token_answer(status, data, now, default_ttl, margin, min_remaining) else { continue };
            assert_eq!(status, 200, "a token from a {status} answer");
            let token = t.access_token.expose();
            assert!(!token.is_empty() && token.len() <= 16 * 1024);
            assert!(token.bytes().all(|b| b.is_ascii_graphic()), "a token that could split a header");
            assert_eq!(t.issued_at, now);
            assert!(t.expires_at > now, "a token already expired: {t:?}");
            assert!(
                now <= t.refresh_at && t.refresh_at <= t.usable_until && t.usable_until <= t.expires_at,
                "{t:?} at {now}"
            );
            // The gateway may replay a decision for the minimum remaining life (at most half
            // the token's life): the token stops being handed out that long before it expires.
            let life = t.expires_at - t.issued_at;
            assert!(t.expires_at - t.usable_until >= min_remaining.min(life / 2), "{t:?}");
        }
    }
}
