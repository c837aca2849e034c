//! The company's skill library and work types, managed through the REST API and the CLI.
//! Employees may only carry skills from the library; timesheet entries name work types.

use serde::Deserialize;

use crate::error::ApiError;
use crate::store::{Store, StoreError, WorkType, WriteTx};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkTypeInput {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub billable: bool,
    #[serde(default)]
    pub requires_work_order: bool,
    #[serde(default = "one")]
    pub multiplier: f64,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default = "yes")]
    pub active: bool,
}

fn one() -> f64 {
    1.0
}

fn yes() -> bool {
    true
}

pub(crate) fn check_skill_names(names: &[String]) -> Result<Vec<String>, ApiError> {
    let cleaned: Vec<String> = names.iter().map(|n| n.trim().to_string()).collect();
    if cleaned.is_empty()
        || cleaned
            .iter()
            .any(|n| n.is_empty() || n.chars().count() > 100)
    {
        return Err(ApiError::bad_request(
            "invalid_skill",
            "skill names must be 1 to 100 characters",
        ));
    }
    Ok(cleaned)
}

pub(crate) fn check_work_type(input: WorkTypeInput) -> Result<WorkType, ApiError> {
    let code = input.code.trim().to_ascii_uppercase();
    if code.is_empty() || code.chars().count() > 20 {
        return Err(ApiError::bad_request(
            "invalid_work_type",
            "code must be 1 to 20 characters",
        ));
    }
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "invalid_work_type",
            "name must be 1 to 100 characters",
        ));
    }
    if !(input.multiplier > 0.0 && input.multiplier.is_finite()) {
        return Err(ApiError::bad_request(
            "invalid_work_type",
            "multiplier must be positive",
        ));
    }
    Ok(WorkType {
        code,
        name,
        billable: input.billable,
        requires_work_order: input.requires_work_order,
        multiplier: input.multiplier,
        is_default: input.is_default,
        active: input.active,
    })
}

/// Adds skills to a company's library; returns how many were new.
pub(crate) async fn add_skills(
    store: &Store,
    company_id: &str,
    names: Vec<String>,
) -> Result<usize, StoreError> {
    let company = company_id.to_string();
    store
        .write(move |tx| tx.add_skills(&company, &names, crate::clock::now_secs()))
        .await
}

pub(crate) async fn save_work_type(
    store: &Store,
    company_id: &str,
    work_type: WorkType,
) -> Result<(), StoreError> {
    let company = company_id.to_string();
    store
        .write(move |tx| {
            ensure_default_work_types(tx, &company)?;
            tx.upsert_work_type(&company, &work_type)
        })
        .await
}

/// The work types every company starts with: (code, name, billable, requires a work order,
/// pay multiplier, default).
const DEFAULT_WORK_TYPES: &[(&str, &str, bool, bool, f64, bool)] = &[
    ("REG", "Regular Time", true, true, 1.0, true),
    ("OT", "Overtime", true, true, 1.5, false),
    ("VAC", "Vacation", false, false, 1.0, false),
    ("SICK", "Sick Leave", false, false, 1.0, false),
    ("HOL", "Holiday", false, false, 1.0, false),
];

/// Gives a new company the default work types (a company that has any keeps its own).
pub(crate) fn ensure_default_work_types(tx: &WriteTx, company_id: &str) -> Result<(), StoreError> {
    let defaults: Vec<WorkType> = DEFAULT_WORK_TYPES
        .iter()
        .map(
            |&(code, name, billable, requires_work_order, multiplier, is_default)| WorkType {
                code: code.to_string(),
                name: name.to_string(),
                billable,
                requires_work_order,
                multiplier,
                is_default,
                active: true,
            },
        )
        .collect();
    tx.ensure_work_types(company_id, &defaults)
}
