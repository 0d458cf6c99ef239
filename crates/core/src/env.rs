//! Configuration sections read from `CHARGEOPS_<SECTION>_<KEY>` variables: the value parsers
//! and [`apply_env!`](crate::apply_env), shared by every section so they all read numbers and
//! flags alike and say the same when one is wrong.

/// A number, or an error naming the variable.
pub fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("invalid {name}: {v:?} is not a number"))
}

/// `1/true/yes/on` or `0/false/no/off`, or an error naming the variable.
pub fn flag(name: &str, v: &str) -> Result<bool, String> {
    match v.trim() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("invalid {name}: {v:?} is not true or false")),
    }
}

/// Sets each listed field of `$config` from `<PREFIX><FIELD>` (upper-cased) when `$var` has
/// it, parsed by `number` or `flag`; returns the first error from the enclosing function.
///
/// ```
/// # fn main() -> Result<(), String> {
/// struct C { ticks: u64, on: bool }
/// let mut c = C { ticks: 1, on: false };
/// let var = |k: &str| (k == "CHARGEOPS_X_TICKS").then(|| "5".to_owned());
/// chargeops_core::apply_env!(c, var, "CHARGEOPS_X_", ticks: number, on: flag);
/// assert_eq!((c.ticks, c.on), (5, false));
/// # Ok(())
/// # }
/// ```
#[macro_export]
macro_rules! apply_env {
    ($config:expr, $var:expr, $prefix:literal, $($field:ident: $kind:ident),+ $(,)?) => {
        $(
            let name = concat!($prefix, stringify!($field)).to_ascii_uppercase();
            if let Some(v) = $var(&name) {
                $config.$field = $crate::env::$kind(&name, &v)?;
            }
        )+
    };
}
