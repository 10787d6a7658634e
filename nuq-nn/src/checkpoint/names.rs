//! Matching the tensor names of a file to the model's: exact names first, then with the
//! prefixes that PyTorch's wrappers add stripped.

/// Leading name segments that PyTorch wrappers add to every `state_dict` key and that loading
/// strips, at any depth and in any order: `module.` (`DataParallel`,
/// `DistributedDataParallel`, and `module.module.` when one wraps the other) and `_orig_mod.`
/// (`torch.compile`).
pub const WRAPPER_PREFIXES: [&str; 2] = ["module.", "_orig_mod."];

/// The model tensor that the file tensor `file_name` stands for: `file_name` itself when the
/// model has it (`has`), else `file_name` with leading [`WRAPPER_PREFIXES`] segments removed
/// one at a time until the model has the rest; `None` when no such name exists.
pub(super) fn model_name(file_name: &str, has: impl Fn(&str) -> bool) -> Option<&str> {
    let mut rest = file_name;
    loop {
        if has(rest) {
            return Some(rest);
        }
        rest = WRAPPER_PREFIXES.iter().find_map(|p| rest.strip_prefix(p))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_win_and_prefixes_strip_at_any_depth() {
        let has = |n: &str| ["fc.weight", "module.x"].contains(&n);
        assert_eq!(model_name("fc.weight", has), Some("fc.weight"));
        assert_eq!(model_name("module.fc.weight", has), Some("fc.weight"));
        assert_eq!(
            model_name("module._orig_mod.module.fc.weight", has),
            Some("fc.weight")
        );
        // A model tensor whose own name starts with a wrapper segment is matched as it is.
        assert_eq!(model_name("module.x", has), Some("module.x"));
        assert_eq!(model_name("module.module.x", has), Some("module.x"));
        assert_eq!(model_name("model.fc.weight", has), None);
        assert_eq!(model_name("module.", has), None);
    }
}
