//! The `civicbus` command line, built in the tests package so end-to-end tests can run
//! and kill it as a separate process.

fn main() -> std::process::ExitCode {
    civicbus_server::entry::main_entry()
}
