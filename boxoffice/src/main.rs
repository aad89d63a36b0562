//! `boxoffice`: one binary, one subcommand per role, so one image serves
//! every Deployment.

mod broker_bench;
mod config_reference;
mod demo;
mod loadgen;

use boxoffice_backend::ApiConfig;
use boxoffice_platform::{shutdown, telemetry};
use boxoffice_processors::reservation::ReservationProcessorConfig;
use boxoffice_processors::seat::SeatProcessorConfig;
use clap::{CommandFactory, Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "boxoffice",
    version,
    about = "A ticket on-sale platform: API, seat-processor, reservation-processor and tools"
)]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// The REST + SSE API (deferred booking responses).
    Api(Box<ApiConfig>),
    /// Applies booking commands to seat maps kept in RocksDB.
    SeatProcessor(SeatProcessorConfig),
    /// Records outcomes in PostgreSQL and Redis, answers the API, expires holds.
    ReservationProcessor(ReservationProcessorConfig),
    /// The web app: buyer pages, server-rendered and hydrated (wasm).
    Dashboard(boxoffice_dashboard::server::DashboardConfig),
    /// Creates a demo event through the API and prints its URLs.
    Demo(demo::DemoArgs),
    /// An on-sale spike against a running API, with the invariant check.
    Loadgen(loadgen::LoadgenArgs),
    /// The broker's own produce-to-consume ceiling with the pipeline's
    /// client settings, or the records held by a prefix's topics.
    BrokerBench(broker_bench::BrokerBenchArgs),
    /// Prints every environment variable each role reads, with its default
    /// and meaning, as Markdown (the README's configuration reference).
    ConfigReference,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Role::ConfigReference = cli.role {
        print!("{}", config_reference::markdown(&Cli::command()));
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.role {
            Role::Api(c) => {
                let instance = c.common.instance_name("api");
                let _telemetry = telemetry::init("api", &instance)?;
                boxoffice_backend::run(*c, instance, shutdown::on_signal()).await
            }
            Role::SeatProcessor(c) => {
                let instance = c.common.instance_name("seat-processor");
                let _telemetry = telemetry::init("seat-processor", &instance)?;
                boxoffice_processors::seat::run(c, instance, shutdown::on_signal()).await
            }
            Role::ReservationProcessor(c) => {
                let instance = c.common.instance_name("reservation-processor");
                let _telemetry = telemetry::init("reservation-processor", &instance)?;
                boxoffice_processors::reservation::run(c, instance, shutdown::on_signal()).await
            }
            Role::Dashboard(c) => {
                let instance = c.common.instance_name("dashboard");
                let _telemetry = telemetry::init("dashboard", &instance)?;
                boxoffice_dashboard::server::run(c, instance, shutdown::on_signal()).await
            }
            Role::Demo(args) => demo::run(args).await,
            Role::Loadgen(args) => loadgen::run(args).await,
            Role::BrokerBench(args) => broker_bench::run(args).await,
            Role::ConfigReference => Ok(()),
        }
    })
}
