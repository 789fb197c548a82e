//! `agentbak completions SHELL` and `agentbak man`.

use super::{command, write_stdout};
use crate::error::{Error, ExitCode, Result};

pub(super) fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut cmd = command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "agentbak", &mut buf);
    write_stdout(&buf)?;
    Ok(ExitCode::Success)
}

pub(super) fn man() -> Result<ExitCode> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(command())
        .render(&mut buf)
        .map_err(|e| Error::io("<man page>", e))?;
    write_stdout(&buf)?;
    Ok(ExitCode::Success)
}
