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
    check_grants(data);
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

/// The same bytes as an answer to each backend grant: a token only from a 200, a refusal of the
/// caller only from a 400 to a grant that carries one, an exchanged token only when the answer
/// says it issued a type forwarded as `Bearer`, and what a token is never depends on the grant.
pub fn check_grants(data: &[u8]) {
    use tokenbridge_core::fuzzing::{GrantAnswer, GrantKind, grant_answer};
    let kinds =
        [GrantKind::ClientCredentials, GrantKind::TokenExchange, GrantKind::TokenExchangeForJwt, GrantKind::OnBehalfOf];
    let has_issued_type = std::str::from_utf8(data).is_ok_and(|s| s.contains("issued_token_type"));
    for status in [200, 400, 401, 503] {
        let plain = token_answer(status, data, 1_800_000_000, 300, 30, 60);
        for kind in kinds {
            match grant_answer(kind, status, data, 1_800_000_000) {
                Ok(GrantAnswer::Refused) => {
                    assert_eq!(status, 400, "a refusal from a {status} answer");
                    assert_ne!(kind, GrantKind::ClientCredentials, "client_credentials refusing a caller");
                }
                Ok(GrantAnswer::Token(token)) => {
                    assert_eq!(status, 200, "a token from a {status} answer");
                    let Ok(plain) = &plain else { panic!("{kind:?} read a token client_credentials would not") };
                    assert_eq!(plain.access_token.expose(), token.expose());
                    if matches!(kind, GrantKind::TokenExchange | GrantKind::TokenExchangeForJwt) {
                        assert!(has_issued_type, "an exchanged token without issued_token_type");
                    }
                }
                Err(_) => {}
            }
        }
    }
}
