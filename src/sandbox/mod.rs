//! The sandbox: `plan` (pure) decides, `apply` carries out, `sys` holds every syscall.
