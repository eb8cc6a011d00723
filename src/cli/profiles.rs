//! `stepjail profiles`: the built-in profiles, one line each.

pub fn run() -> i32 {
    let all = crate::policy::builtins();
    let width = all.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, description) in all {
        println!("{name:width$}  {description}");
    }
    0
}
