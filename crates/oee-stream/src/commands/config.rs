//! `oee-stream check-config FILE` and `oee-stream print-default-config`.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use oee_stream::settings::{self, Settings};

#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// The configuration file (YAML). Environment overrides (`OEE_<SECTION>__<KEY>`) apply as
    /// they would for `run`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Why `check-config` failed; every diagnostic was printed before this is returned.
#[derive(Debug)]
pub struct Invalid {
    file: PathBuf,
    count: usize,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.count == 1 { "" } else { "s" };
        write!(
            f,
            "{}: {} problem{s}, nothing was started",
            self.file.display(),
            self.count
        )
    }
}

impl std::error::Error for Invalid {}

impl Invalid {
    pub fn new(file: &Path, count: usize) -> Invalid {
        Invalid {
            file: file.to_path_buf(),
            count,
        }
    }
}

/// Every problem on standard error, one per line.
pub fn print_diagnostics(diags: &[settings::ConfigDiagnostic]) {
    let mut err = io::stderr().lock();
    for d in diags {
        let _ = writeln!(err, "{d}");
    }
}

/// Validates the file exactly as `run` does before it connects to anything. Prints every
/// problem as `FILE:LINE:COLUMN: key.path: message` on standard error; on success, the warnings
/// and a one-line summary on standard output.
pub fn check(args: &CheckConfigArgs) -> Result<(), Invalid> {
    match settings::check_config(&args.file) {
        Ok(s) => {
            let mut out = io::stdout().lock();
            // A closed standard output is not a configuration problem; ignore write errors.
            for w in &s.warnings {
                let _ = writeln!(out, "warning: {w}");
            }
            let _ = writeln!(out, "{}", summary(&args.file, &s));
            Ok(())
        }
        Err(diags) => {
            print_diagnostics(&diags);
            Err(Invalid::new(&args.file, diags.len()))
        }
    }
}

fn summary(file: &Path, s: &Settings) -> String {
    format!(
        "{}: OK ({} tag mapping rule{}, {} warning{}); broker {}, host id {:?}, HTTP on {}",
        file.display(),
        s.domain.rules.len(),
        if s.domain.rules.len() == 1 { "" } else { "s" },
        s.warnings.len(),
        if s.warnings.len() == 1 { "" } else { "s" },
        s.file.mqtt.url,
        s.file.mqtt.host_id,
        s.http_listen,
    )
}

/// Prints the commented default configuration.
pub fn print_default() -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out
        .write_all(settings::default_config_text().as_bytes())
        .and_then(|()| out.flush())
    {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
