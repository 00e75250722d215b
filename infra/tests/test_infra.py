"""Checks of infra/ that checkov cannot make: least privilege of hubspoke's identity, the Event Grid
filter against its limit, and the settings the app needs. Python standard library only; run by
infra/check (python -m unittest discover -s infra/tests).

The Bicep files are read as text: Bicep cannot be compiled here. The few functions below understand
exactly as much Bicep as these tests need (single-quoted strings, // comments, arrays of strings).
"""

import re
import unittest
from pathlib import Path

INFRA = Path(__file__).resolve().parent.parent
ROLE_FILE = INFRA / "modules" / "network-role.bicep"
EVENTS_FILE = INFRA / "modules" / "event-subscription.bicep"

# Built-in roles hubspoke's deployment must never grant (Azure built-in roles reference).
FORBIDDEN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "4d97b98b-1d4f-4787-a291-c67834d212e7": "Network Contributor",
}

# The only built-in roles infra/ may assign, each on hubspoke's own storage or monitoring.
ALLOWED_BUILTIN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "19e7f393-937e-4f77-808e-94535e297925": "Storage Queue Data Reader",
    "8a0f0c08-91a1-4084-bc3d-661d67233fed": "Storage Queue Data Message Processor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}

# docs/design.md §3: the writes and deletes OnNetworkEvent takes.
DESIGN_OPERATIONS = {
    "Microsoft.Network/virtualNetworks/write",
    "Microsoft.Network/virtualNetworks/delete",
    "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write",
    "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/delete",
    "Microsoft.Network/virtualNetworks/subnets/write",
    "Microsoft.Network/virtualNetworks/subnets/delete",
    "Microsoft.Network/routeTables/write",
    "Microsoft.Network/routeTables/delete",
    "Microsoft.Network/routeTables/routes/write",
    "Microsoft.Network/routeTables/routes/delete",
    "Microsoft.Network/virtualNetworkGateways/write",
    "Microsoft.Network/virtualNetworkGateways/delete",
    "Microsoft.Resources/tags/write",
}

# Event Grid: at most 25 advanced filter values per event subscription, all filters together.
EVENT_GRID_FILTER_VALUE_LIMIT = 25

# docs/design.md §5: what the deployment sets. HUBSPOKE_ARM_ENDPOINT and HUBSPOKE_CA_CERT are for
# the simulator and stay unset in Azure.
HUBSPOKE_SETTINGS = {
    "HUBSPOKE_HUBS",
    "HUBSPOKE_SUBSCRIPTIONS",
    "HUBSPOKE_ENROLLMENT",
    "HUBSPOKE_EXCLUDE_SUBNETS",
    "HUBSPOKE_CREATE_MISSING_PEERINGS",
    "HUBSPOKE_MANAGED_TABLES_ONLY",
    "HUBSPOKE_ALLOW_OVER_DEFAULT_ROUTE",
    "HUBSPOKE_SUMMARY_PREFIXES",
    "HUBSPOKE_DISABLE_BGP_PROPAGATION",
    "HUBSPOKE_ROUTE_LIMIT",
    "HUBSPOKE_DRY_RUN",
    "HUBSPOKE_DRIFT_SCHEDULE",
}
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "AZURE_CLIENT_ID",
    "HUBSPOKE_SELF_PRINCIPAL_ID",
}

GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def split_code_and_comment(line):
    """Splits one Bicep line into (code, comment): `//` starts a comment outside a '...' string."""
    in_string = False
    i = 0
    while i < len(line):
        char = line[i]
        if in_string:
            if char == "\\":
                i += 2
                continue
            if char == "'":
                in_string = False
        elif char == "'":
            in_string = True
        elif line.startswith("//", i):
            return line[:i], line[i + 2 :].strip()
        i += 1
    return line, ""


def code_only(text):
    """The text without // comments (block comments are not used in infra/)."""
    return "\n".join(split_code_and_comment(line)[0] for line in text.splitlines())


def string_array(text, variable):
    """The items of `var <variable> = [ ... ]`: a list of (value, justification). An item's
    justification is the comment on its own line plus the comment block heading its group (a
    group: the items that follow one comment block, up to the next comment block or blank line)."""
    lines = text.splitlines()
    start = next(
        (n for n, line in enumerate(lines) if re.match(rf"\s*var\s+{variable}\s*=\s*\[\s*$", line)),
        None,
    )
    if start is None:
        raise AssertionError(f"no `var {variable} = [` array found")
    items = []
    heading = []
    after_item = False
    for line in lines[start + 1 :]:
        code, comment = split_code_and_comment(line)
        code = code.strip()
        if code == "]":
            return items
        if not code:
            if not comment:
                heading = []
            elif after_item:
                heading = [comment]
            else:
                heading.append(comment)
            after_item = False
            continue
        match = re.fullmatch(r"'([^']*)'", code)
        if not match:
            raise AssertionError(f"`{variable}` holds something other than a string: {code}")
        items.append((match.group(1), " ".join(heading + ([comment] if comment else []))))
        after_item = True
    raise AssertionError(f"`var {variable} = [` is never closed")


def unjustified_wildcards(actions):
    """Actions with a `*` whose justification does not say `wildcard:` followed by a reason."""
    return [
        action
        for action, justification in actions
        if "*" in action and not re.search(r"wildcard:\s*\S", justification)
    ]


def bicep_files():
    return sorted(INFRA.rglob("*.bicep")) + sorted(INFRA.rglob("*.bicepparam"))


class NetworkRole(unittest.TestCase):
    def setUp(self):
        self.actions = string_array(ROLE_FILE.read_text(), "actions")

    def test_no_wildcard_action_without_a_justification_beside_it(self):
        self.assertEqual(unjustified_wildcards(self.actions), [])

    def test_the_wildcard_check_flags_an_unjustified_wildcard_and_accepts_a_justified_one(self):
        snippet = "\n".join(
            [
                "var actions = [",
                "  // Reads.",
                "  'Microsoft.Network/virtualNetworks/read'",
                "  'Microsoft.Network/routeTables/*'",
                "  // wildcard: every sub-resource of a table is hubspoke's own",
                "  'Microsoft.Network/routeTables/routes/*'",
                "  'Microsoft.Network/*/read' // wildcard: reads only",
                "",
                "  'Microsoft.Network/natGateways/*'",
                "  'Microsoft.Network/natGateways/*/read' // wildcard:",
                "]",
            ]
        )
        self.assertEqual(
            unjustified_wildcards(string_array(snippet, "actions")),
            [
                "Microsoft.Network/routeTables/*",
                "Microsoft.Network/natGateways/*",
                "Microsoft.Network/natGateways/*/read",
            ],
        )

    def test_every_action_is_a_network_action(self):
        outside = [a for a, _ in self.actions if not a.startswith("Microsoft.Network/")]
        self.assertEqual(outside, [])

    def test_nothing_is_deleted_but_hubspoke_routes(self):
        deletes = [a for a, _ in self.actions if a.endswith("/delete")]
        self.assertEqual(deletes, ["Microsoft.Network/routeTables/routes/delete"])

    def test_every_action_has_its_reason_beside_it(self):
        self.assertEqual([a for a, why in self.actions if not why], [])

    def test_the_calls_hubspoke_makes_are_all_allowed(self):
        needed = {
            # observe
            "Microsoft.Network/virtualNetworks/read",
            "Microsoft.Network/routeTables/read",
            "Microsoft.Network/virtualNetworkGateways/read",
            # peerings, checked on the remote VNet too
            "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write",
            "Microsoft.Network/virtualNetworks/peer/action",
            # tables and routes
            "Microsoft.Network/routeTables/write",
            "Microsoft.Network/routeTables/routes/write",
            "Microsoft.Network/routeTables/routes/delete",
            # subnet association and what a subnet PUT is checked for
            "Microsoft.Network/virtualNetworks/subnets/read",
            "Microsoft.Network/virtualNetworks/subnets/write",
            "Microsoft.Network/routeTables/join/action",
            "Microsoft.Network/networkSecurityGroups/join/action",
            "Microsoft.Network/natGateways/join/action",
            "Microsoft.Network/serviceEndpointPolicies/join/action",
            "Microsoft.Network/virtualNetworks/subnets/joinViaServiceEndpoint/action",
            # verification: a spoke interface's effective routes (HUBSPOKE_VERIFY_EFFECTIVE)
            "Microsoft.Network/networkInterfaces/effectiveRouteTable/action",
        }
        self.assertEqual(needed - {a for a, _ in self.actions}, set())

    def test_the_verification_reads_interfaces_and_writes_none(self):
        interface_actions = [a for a, _ in self.actions if "/networkInterfaces/" in a]
        self.assertEqual(
            interface_actions, ["Microsoft.Network/networkInterfaces/effectiveRouteTable/action"]
        )

    def test_the_role_grants_no_data_actions_and_no_exceptions(self):
        code = code_only(ROLE_FILE.read_text())
        for key in ("notActions", "dataActions", "notDataActions"):
            self.assertRegex(code, rf"{key}:\s*\[\]", f"{key} must stay empty")


class NoBroadRoles(unittest.TestCase):
    def test_owner_contributor_and_network_contributor_are_granted_nowhere(self):
        for path in bicep_files():
            code = code_only(path.read_text())
            for guid, name in FORBIDDEN_ROLES.items():
                self.assertNotIn(guid.lower(), code.lower(), f"{path.name} grants {name}")
            for name in FORBIDDEN_ROLES.values():
                self.assertNotRegex(code, rf"'{name}'", f"{path.name} names the role {name}")

    def test_only_storage_and_monitoring_data_roles_are_assigned_by_id(self):
        # Templates only: the parameter example holds subscription ids.
        for path in sorted(INFRA.rglob("*.bicep")):
            for guid in GUID.findall(code_only(path.read_text())):
                self.assertIn(
                    guid.lower(),
                    ALLOWED_BUILTIN_ROLES,
                    f"{path.name} refers to {guid}, which is not one of the allowed built-in roles",
                )

    def test_no_storage_key_or_connection_string_with_a_secret(self):
        for path in bicep_files():
            code = code_only(path.read_text())
            for secret in ("listKeys(", "AccountKey=", "InstrumentationKey="):
                self.assertNotIn(secret, code, f"{path.name} uses {secret}")


class EventSubscription(unittest.TestCase):
    def setUp(self):
        self.text = EVENTS_FILE.read_text()
        self.operations = [value for value, _ in string_array(self.text, "operationNames")]

    def test_the_filter_takes_exactly_the_writes_and_deletes_of_design_section_3(self):
        self.assertEqual(len(self.operations), len(set(self.operations)), "a value is repeated")
        self.assertEqual(set(self.operations), DESIGN_OPERATIONS)

    def test_the_filter_stays_within_event_grids_value_limit(self):
        code = code_only(self.text)
        filters = re.findall(r"operatorType:\s*'", code)
        self.assertEqual(len(filters), 1, "one advanced filter, on data.operationName")
        self.assertLessEqual(len(self.operations), EVENT_GRID_FILTER_VALUE_LIMIT)

    def test_only_successful_writes_and_deletes_are_delivered(self):
        code = code_only(self.text)
        block = re.search(r"includedEventTypes:\s*\[(.*?)\]", code, re.S)
        self.assertIsNotNone(block)
        self.assertEqual(
            set(re.findall(r"'([^']+)'", block.group(1))),
            {
                "Microsoft.Resources.ResourceWriteSuccess",
                "Microsoft.Resources.ResourceDeleteSuccess",
            },
        )

    def test_delivery_goes_to_the_function_with_retries_and_dead_lettering(self):
        code = code_only(self.text)
        self.assertIn("endpointType: 'AzureFunction'", code)
        self.assertIn("key: 'data.operationName'", code)
        self.assertIn("retryPolicy:", code)
        self.assertIn("deadLetterWithResourceIdentity:", code)
        self.assertIn("endpointType: 'StorageBlob'", code)

    def test_event_subscriptions_wait_for_the_published_package(self):
        main = code_only((INFRA / "main.bicep").read_text())
        self.assertRegex(
            main,
            r"module eventSubscriptions 'modules/event-subscription.bicep' = \[for .*: if \(deployEventSubscriptions\)",
        )
        self.assertRegex(main, r"param deployEventSubscriptions bool = false")
        self.assertIn("/functions/OnNetworkEvent", main)


class AppSettings(unittest.TestCase):
    def test_every_hubspoke_setting_is_set(self):
        main = code_only((INFRA / "main.bicep").read_text())
        block = re.search(r"var hubspokeSettings = \{(.*?)\n\}", main, re.S)
        self.assertIsNotNone(block)
        keys = set(re.findall(r"^\s*(HUBSPOKE_[A-Z_]+):", block.group(1), re.M))
        self.assertEqual(keys, HUBSPOKE_SETTINGS)

    def test_storage_is_reached_with_the_identity_and_the_runtime_is_custom(self):
        app = code_only((INFRA / "modules" / "app.bicep").read_text())
        block = re.search(r"var platformSettings = \[(.*?)\n\]", app, re.S)
        self.assertIsNotNone(block)
        names = re.findall(r"name: '([A-Za-z_]+)'", block.group(1))
        self.assertEqual(len(names), len(set(names)), "a setting is repeated")
        self.assertEqual(set(names), PLATFORM_SETTINGS)
        self.assertRegex(
            block.group(1), r"name: 'AzureWebJobsStorage__credential'\s*value: 'managedidentity'"
        )
        self.assertIn("appSettings: concat(platformSettings, hubspokeSettings)", app)
        self.assertRegex(app, r"runtime:\s*\{\s*name: 'custom'")
        # Flex Consumption sets the worker runtime in functionAppConfig and refuses the setting.
        self.assertNotIn("FUNCTIONS_WORKER_RUNTIME", app)
        self.assertIn("tier: 'FlexConsumption'", app)

    def test_the_drift_schedule_always_has_a_value(self):
        main = code_only((INFRA / "main.bicep").read_text())
        self.assertIn("param driftSchedule string = '0 */15 * * * *'", main)


class ResourceProviders(unittest.TestCase):
    """infra/register-providers registers what each subscription needs."""

    def providers(self, variable):
        script = (INFRA / "register-providers").read_text()
        match = re.search(rf"^{variable}=\((.*?)\)$", script, re.M)
        self.assertIsNotNone(match, f"{variable} is not set in infra/register-providers")
        return set(match.group(1).split())

    def test_the_hosting_subscription_registers_event_grid(self):
        # Event Grid reads the AzureFunction endpoint's key in the app's subscription, under its
        # own service principal: without its provider there, step 3 fails.
        hosting = self.providers("HOSTING_PROVIDERS")
        self.assertIn("Microsoft.EventGrid", hosting)
        self.assertTrue(
            {"Microsoft.Web", "Microsoft.Storage", "Microsoft.ManagedIdentity"} <= hosting
        )

    def test_every_subscription_in_scope_registers_event_grid(self):
        self.assertEqual(self.providers("SCOPE_PROVIDERS"), {"Microsoft.EventGrid"})

    def test_the_deployment_guide_registers_through_the_script(self):
        guide = (INFRA.parent / "docs" / "deploy.md").read_text()
        self.assertIn("infra/register-providers", guide)


class RoleHome(unittest.TestCase):
    """The custom role is defined in the hosting subscription, whatever the order of the hubs."""

    def test_the_role_is_defined_in_the_hosting_subscription(self):
        main = code_only((INFRA / "main.bicep").read_text())
        block = re.search(r"module networkRole 'modules/network-role.bicep' = \{(.*?)\n\}", main, re.S)
        self.assertIsNotNone(block)
        self.assertRegex(block.group(1), r"scope:\s*subscription\(\)\s*\n")
        self.assertNotIn("scopeSubscriptions[", block.group(1))

    def test_the_role_is_assignable_where_it_is_defined_and_in_every_subscription_in_scope(self):
        main = code_only((INFRA / "main.bicep").read_text())
        self.assertRegex(
            main, r"subscriptionIds:\s*union\(\[subscription\(\)\.subscriptionId\],\s*scopeSubscriptions\)"
        )

    def test_the_role_name_depends_on_nothing_the_order_of_hubs_changes(self):
        role = code_only(ROLE_FILE.read_text())
        self.assertIn("name: guid(tenant().tenantId, 'hubspoke-network-operator', roleName)", role)
        main = code_only((INFRA / "main.bicep").read_text())
        self.assertIn("roleName: 'hubspoke network operator (${functionAppName})'", main)
        self.assertIn("uniqueString(subscription().id, resourceGroupName, namePrefix)", main)


class OperatorAccess(unittest.TestCase):
    """`hubspoke results` reads by peeking; the whole queue needs Contributor, only on request."""

    def setUp(self):
        self.app = code_only((INFRA / "modules" / "app.bicep").read_text())

    def assignments(self):
        return re.findall(
            r"resource (\w+) 'Microsoft.Authorization/roleAssignments@[^']+' = if \((.*?)\) \{\n(.*?)\n\}",
            self.app,
            re.S,
        )

    def test_the_operators_peek_by_default_and_process_nothing(self):
        operator = [a for a in self.assignments() if "operatorPrincipalId" in a[2]]
        roles = {re.search(r"roles\.(\w+)\)", body).group(1): condition for _, condition, body in operator}
        self.assertEqual(
            set(roles),
            {"storageQueueDataReader", "storageQueueDataContributor", "storageBlobDataReader"},
        )
        self.assertNotIn("storageQueueDataMessageProcessor", roles)
        self.assertIn("operatorReadsWholeQueue", roles["storageQueueDataContributor"])
        self.assertNotIn("operatorReadsWholeQueue", roles["storageQueueDataReader"])

    def test_the_operators_roles_are_scoped_to_the_outcome_queue_and_the_dead_letters(self):
        for name, _, body in self.assignments():
            if "operatorPrincipalId" in body:
                self.assertRegex(body, r"scope: (outcomesQueue|deadLetterContainer)\n", name)


class ParameterExample(unittest.TestCase):
    def test_the_example_sets_only_parameters_main_declares(self):
        main = code_only((INFRA / "main.bicep").read_text())
        declared = set(re.findall(r"^param\s+(\w+)\s", main, re.M))
        example = code_only((INFRA / "main.bicepparam").read_text())
        self.assertIn("using 'main.bicep'", example)
        used = set(re.findall(r"^param\s+(\w+)\s*=", example, re.M))
        self.assertTrue(used, "the example sets no parameter")
        self.assertEqual(used - declared, set())
        for required in ("hubs", "subscriptions", "driftSchedule", "routeLimit", "dryRun"):
            self.assertIn(required, used)


if __name__ == "__main__":
    unittest.main()
