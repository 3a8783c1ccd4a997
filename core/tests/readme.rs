//! The configuration reference (docs/configuration.md) must name every setting the core reads.

#[test]
fn the_configuration_reference_documents_every_setting() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md"))
        .expect("docs/configuration.md");
    for s in tokenbridge_core::SETTINGS {
        assert!(readme.contains(&format!("| `{}` |", s.name)), "docs/configuration.md lacks a row for {}", s.name);
        if let Some(alias) = s.alias {
            assert!(readme.contains(&format!("`{alias}`")), "docs/configuration.md lacks the alias {alias}");
        }
    }
}
