//! `hookgate skills` and `hookgate work-types`: a company's skill library and work types,
//! through the same checks as the REST API.

use clap::Subcommand;

use super::{Format, company_id};
use crate::app;
use crate::config::Config;
use crate::skills;
use crate::views;

#[derive(Subcommand)]
pub(super) enum SkillsCommand {
    /// Add skills (names with spaces need quotes).
    Add {
        /// The company whose library gets them (created if new).
        #[arg(long)]
        company: String,
        /// Skill names, e.g. "Concrete Finisher".
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List the company's skills.
    List {
        /// The company whose library to list.
        #[arg(long)]
        company: String,
        #[command(flatten)]
        format: Format,
    },
}

#[derive(Subcommand)]
pub(super) enum WorkTypesCommand {
    /// List the company's work types.
    List {
        /// The company whose work types to list.
        #[arg(long)]
        company: String,
        #[command(flatten)]
        format: Format,
    },
    /// Add or change a work type (by code).
    Add {
        /// The company that gets it (created if new).
        #[arg(long)]
        company: String,
        /// Short code, stored upper case (e.g. TRV).
        #[arg(long)]
        code: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Hours of this type are billable.
        #[arg(long)]
        billable: bool,
        /// Entries of this type must name a work order.
        #[arg(long)]
        requires_work_order: bool,
        /// Pay multiplier (e.g. 1.5 for overtime).
        #[arg(long, default_value_t = 1.0)]
        multiplier: f64,
        /// Make it the company default (used when an entry names no work type).
        #[arg(long)]
        default: bool,
    },
}

pub(super) async fn skills(command: SkillsCommand, config: Config) -> anyhow::Result<()> {
    let (store, _keys) = app::open_store(&config)?;
    match command {
        SkillsCommand::Add { company, names } => {
            let company_id = company_id(&store, &company).await?;
            let names = skills::check_skill_names(&names)?;
            let added = skills::add_skills(&store, &company_id, names).await?;
            println!("added {added} skill(s) to {company}");
        }
        SkillsCommand::List { company, format } => {
            let company_id = company_id(&store, &company).await?;
            for name in store.read(move |r| r.list_skills(&company_id)).await? {
                format.emit(&views::skill(&name), || name.clone());
            }
        }
    }
    Ok(())
}

pub(super) async fn work_types(command: WorkTypesCommand, config: Config) -> anyhow::Result<()> {
    let (store, _keys) = app::open_store(&config)?;
    match command {
        WorkTypesCommand::List { company, format } => {
            let company_id = company_id(&store, &company).await?;
            for w in store.read(move |r| r.list_work_types(&company_id)).await? {
                format.emit(&views::work_type(&w), || {
                    format!(
                        "{:<8} {:<20} billable={} requires_work_order={} x{}{}{}",
                        w.code,
                        w.name,
                        w.billable,
                        w.requires_work_order,
                        w.multiplier,
                        if w.is_default { " default" } else { "" },
                        if w.active { "" } else { " inactive" }
                    )
                });
            }
        }
        WorkTypesCommand::Add {
            company,
            code,
            name,
            billable,
            requires_work_order,
            multiplier,
            default,
        } => {
            let company_id = company_id(&store, &company).await?;
            let input = skills::WorkTypeInput {
                code,
                name,
                billable,
                requires_work_order,
                multiplier,
                is_default: default,
                active: true,
            };
            let work_type = skills::check_work_type(input)?;
            let code = work_type.code.clone();
            skills::save_work_type(&store, &company_id, work_type).await?;
            println!("saved work type {code} for {company}");
        }
    }
    Ok(())
}
