//! `civicbus`: the event bus binary (serve, demo, publish, config, token).

fn main() -> std::process::ExitCode {
    civicbus_server::entry::main_entry()
}
