//! The `rprop-lab` program: the library's command line ([`rprop_lab::cli::main`]). It
//! registers no fault hook (`rprop_lab::fsio::set_fault_hook`), so no variable in a user's
//! environment can stop it at a filesystem step.

fn main() -> std::process::ExitCode {
    rprop_lab::cli::main()
}
