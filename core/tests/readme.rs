//! The README's configuration table must name every setting the core reads.

#[test]
fn readme_documents_every_setting() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    for s in tokenbridge_core::SETTINGS {
        assert!(readme.contains(&format!("| `{}` |", s.name)), "README.md lacks a row for {}", s.name);
        if let Some(alias) = s.alias {
            assert!(readme.contains(&format!("`{alias}`")), "README.md lacks the alias {alias}");
        }
    }
}
