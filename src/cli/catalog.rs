//! `hookgate skills` and `hookgate work-types`: a company's skill library and work types,
//! through the same checks as the REST API.

use clap::Subcommand;

use super::company_id;
use crate::app;
use crate::config::Config;
use crate::skills;

#[derive(Subcommand)]
pub(super) enum SkillsCommand {
    /// Add skills (names with spaces need quotes).
    Add {
        #[arg(long)]
        company: String,
        #[arg(required = true)]
        names: Vec<String>,
    },
    List {
        #[arg(long)]
        company: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum WorkTypesCommand {
    List {
        #[arg(long)]
        company: String,
        #[arg(long)]
        json: bool,
    },
    /// Add or change a work type (by code).
    Add {
        #[arg(long)]
        company: String,
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        billable: bool,
        #[arg(long)]
        requires_work_order: bool,
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
        SkillsCommand::List { company, json } => {
            let company_id = company_id(&store, &company).await?;
            let list = store.read(move |r| r.list_skills(&company_id)).await?;
            if json {
                println!("{}", serde_json::to_string(&list).expect("serializable"));
            } else {
                list.iter().for_each(|s| println!("{s}"));
            }
        }
    }
    Ok(())
}

pub(super) async fn work_types(command: WorkTypesCommand, config: Config) -> anyhow::Result<()> {
    let (store, _keys) = app::open_store(&config)?;
    match command {
        WorkTypesCommand::List { company, json } => {
            let company_id = company_id(&store, &company).await?;
            let list = store.read(move |r| r.list_work_types(&company_id)).await?;
            if json {
                println!("{}", serde_json::to_string(&list).expect("serializable"));
            } else {
                for w in list {
                    println!(
                        "{:<8} {:<20} billable={} requires_work_order={} x{}{}{}",
                        w.code,
                        w.name,
                        w.billable,
                        w.requires_work_order,
                        w.multiplier,
                        if w.is_default { " default" } else { "" },
                        if w.active { "" } else { " inactive" }
                    );
                }
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
