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
GROUP_ROLE_FILE = INFRA / "modules" / "network-role-management-group.bicep"
WIRING_ROLE_FILE = INFRA / "modules" / "event-wiring-role.bicep"
WIRING_POLICY_FILE = INFRA / "modules" / "event-wiring-policy.bicep"
WIRING_IDENTITIES_FILE = INFRA / "modules" / "event-wiring-identities.bicep"
DESTINATION_ROLE_FILE = INFRA / "modules" / "event-destination-role.bicep"
GROUP_ENTRY_FILE = INFRA / "management-group.bicep"

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
    "HUBSPOKE_MANAGEMENT_GROUPS",
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
    "HUBSPOKE_VERIFY_EFFECTIVE",
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


def block(text, opening):
    """The text of the `{ ... }` or `[ ... ]` that `opening` (a line's start, ending with the
    bracket) opens, brackets balanced, strings and comments ignored."""
    code = code_only(text)
    start = code.find(opening)
    if start < 0:
        raise AssertionError(f"`{opening}` not found")
    depth = 0
    in_string = False
    escaped = False
    for i in range(start + len(opening) - 1, len(code)):
        char = code[i]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == "'":
                in_string = False
        elif char == "'":
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return code[start : i + 1]
    raise AssertionError(f"`{opening}` is never closed")


def resources(code):
    """`(symbolic name, type, body)` of each `resource` declared in `code`."""
    found = []
    for match in re.finditer(r"^resource (\w+) '([^'@]+)@[^']+'( existing)? = (?:if \(.*?\) )?\{", code, re.M):
        if match.group(3):
            continue
        body = block(code[match.start():], match.group(0))
        found.append((match.group(1), match.group(2), body))
    return found


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


class Helpers(unittest.TestCase):
    def test_block_balances_brackets_and_skips_strings_and_comments(self):
        text = "var x = {\n  a: '}{ \\' ]'\n  b: [ // ]\n    1\n  ]\n}\nvar y = 1\n"
        self.assertEqual(block(text, "var x = {"), "var x = {\n  a: '}{ \\' ]'\n  b: [ \n    1\n  ]\n}")


class ManagementGroupRole(unittest.TestCase):
    """With a scope of management groups, the network role is assignable at the group and assigned
    there once; it grants what the subscription role grants, and the reading of the group."""

    def setUp(self):
        self.text = GROUP_ROLE_FILE.read_text()
        self.code = code_only(self.text)

    def test_the_same_network_actions_as_the_subscription_role(self):
        self.assertEqual(
            [a for a, _ in string_array(self.text, "actions")],
            [a for a, _ in string_array(ROLE_FILE.read_text(), "actions")],
        )

    def test_beyond_the_network_only_the_reading_of_the_group_and_its_descendants(self):
        self.assertEqual(
            [a for a, _ in string_array(self.text, "managementActions")],
            [
                "Microsoft.Management/managementGroups/read",
                "Microsoft.Management/managementGroups/descendants/read",
            ],
        )
        self.assertIn("actions: concat(actions, managementActions)", self.code)
        for key in ("notActions", "dataActions", "notDataActions"):
            self.assertRegex(self.code, rf"{key}:\s*\[\]")

    def test_assignable_at_the_group_only_and_assigned_there_once(self):
        self.assertRegex(self.code, r"targetScope = 'managementGroup'")
        scopes = block(self.text, "assignableScopes: [")
        self.assertEqual(re.findall(r"\n\s*(\S[^\n]*)", scopes[:-1]), ["managementGroup().id"])
        assignments = [r for r in resources(self.code) if r[1] == "Microsoft.Authorization/roleAssignments"]
        self.assertEqual(len(assignments), 1)
        _, _, body = assignments[0]
        self.assertNotIn("scope:", body, "at the deployment's scope: the management group")
        self.assertIn("roleDefinitionId: role.id", body)
        self.assertIn("principalId: principalId", body)

    def test_the_group_deployment_grants_the_role_to_hubspokes_identity(self):
        entry = code_only(GROUP_ENTRY_FILE.read_text())
        self.assertIn("targetScope = 'managementGroup'", entry)
        self.assertRegex(entry, r"module networkRole 'modules/network-role-management-group.bicep'")
        self.assertIn("principalId: identityPrincipalId", entry)
        # Every module is deployed at the group itself.
        self.assertNotRegex(entry, r"\n\s+scope:")


class EventWiringPolicy(unittest.TestCase):
    """Every subscription under the group, present and future, is wired by a DeployIfNotExists
    policy that deploys exactly the system topic and the event subscription, with the filter of
    modules/event-subscription.bicep; a remediation wires those that exist."""

    def setUp(self):
        self.text = WIRING_POLICY_FILE.read_text()
        self.code = code_only(self.text)
        self.template = block(self.text, "var template = {")

    def test_the_filter_is_the_one_of_the_event_subscription_module(self):
        self.assertEqual(
            [v for v, _ in string_array(self.text, "operationNames")],
            [v for v, _ in string_array(EVENTS_FILE.read_text(), "operationNames")],
        )
        events = code_only(EVENTS_FILE.read_text())
        for fragment in (
            "operatorType: 'StringIn'",
            "key: 'data.operationName'",
            "endpointType: 'AzureFunction'",
            "eventDeliverySchema: 'EventGridSchema'",
            "maxEventsPerBatch: 1",
            "endpointType: 'StorageBlob'",
        ):
            self.assertIn(fragment, events)
            self.assertIn(fragment, self.template)
        types = lambda code: set(re.findall(r"'([^']+)'", block(code, "includedEventTypes: [")))
        self.assertEqual(types(self.template), types(EVENTS_FILE.read_text()))
        self.assertIn("values: operationNames", self.template)
        self.assertRegex(self.template, r"maxDeliveryAttempts: maxDeliveryAttempts\s+eventTimeToLiveInMinutes: eventTimeToLiveMinutes")

    def test_it_deploys_exactly_the_system_topic_and_the_event_subscription(self):
        deployed = re.findall(r"type: '([^']+)'", self.template)
        scaffolding = {"Microsoft.Resources/resourceGroups", "Microsoft.Resources/deployments"}
        self.assertEqual(
            [t for t in deployed if t not in scaffolding and t != "UserAssigned"],
            ["Microsoft.EventGrid/systemTopics", "Microsoft.EventGrid/systemTopics/eventSubscriptions"],
        )
        self.assertIn("topicType: 'Microsoft.Resources.Subscriptions'", self.template)
        self.assertIn("source: '[subscription().id]'", self.template)
        # No role assignment or anything else rides along.
        self.assertNotIn("roleAssignments", self.template)

    def test_deploy_if_not_exists_on_every_subscription_at_subscription_scope(self):
        rule = block(self.text, "policyRule: {")
        self.assertRegex(rule, r"field: 'type'\s+equals: 'Microsoft.Resources/subscriptions'")
        self.assertIn("effect: '[parameters(\\'effect\\')]'", rule)
        self.assertRegex(self.code, r"defaultValue: 'DeployIfNotExists'")
        self.assertIn("type: 'Microsoft.EventGrid/systemTopics/eventSubscriptions'", rule)
        self.assertIn("name: '${topicName}/${eventSubscriptionName}'", rule)
        self.assertIn("deploymentScope: 'Subscription'", rule)
        self.assertIn("existenceScope: 'ResourceGroup'", rule)
        self.assertRegex(rule, r"roleDefinitionIds: \[\s+wiringRoleDefinitionId\s+\]")
        self.assertIn("location: location", block(self.text, "deployment: {"))

    def test_the_assignment_deploys_with_its_user_assigned_identity(self):
        (assignment,) = [r for r in resources(self.code) if r[1] == "Microsoft.Authorization/policyAssignments"]
        self.assertIn("type: 'UserAssigned'", assignment[2])
        self.assertIn("'${wiringIdentityId}': {}", assignment[2])
        self.assertIn("policyDefinitionId: definition.id", assignment[2])
        self.assertIn("enforcementMode: 'Default'", assignment[2])

    def test_a_remediation_wires_the_subscriptions_that_exist(self):
        (remediation,) = [r for r in resources(self.code) if r[1] == "Microsoft.PolicyInsights/remediations"]
        self.assertIn("policyAssignmentId: assignment.id", remediation[2])
        self.assertIn("resourceDiscoveryMode: 'ExistingNonCompliant'", remediation[2])

    def test_the_policy_names_what_main_bicep_names(self):
        main = code_only((INFRA / "main.bicep").read_text())
        wiring = block((INFRA / "main.bicep").read_text(), "output eventWiring object = discovers ? {")
        self.assertIn("topicName: '${namePrefix}-arm-events'", wiring)
        self.assertIn("name: contains(existingSystemTopics, id) ? existingSystemTopics[id].name : '${namePrefix}-arm-events'", main)
        self.assertIn("eventSubscriptionName: take('${functionAppName}-network-events', 64)", wiring)
        self.assertIn("name: take('${functionAppName}-network-events', 64)", main)
        self.assertIn("functionResourceId: '${app.outputs.appId}/functions/OnNetworkEvent'", wiring)


class EventWiringLeastPrivilege(unittest.TestCase):
    """The policy assignment's identity may deploy the wiring and nothing else."""

    def test_its_role_at_the_group_is_the_wiring_and_nothing_else(self):
        text = WIRING_ROLE_FILE.read_text()
        actions = string_array(text, "actions")
        self.assertEqual(
            {a for a, _ in actions},
            {
                "Microsoft.Resources/deployments/read",
                "Microsoft.Resources/deployments/write",
                "Microsoft.Resources/deployments/operationstatuses/read",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                "Microsoft.Resources/subscriptions/resourceGroups/write",
                "Microsoft.EventGrid/systemTopics/read",
                "Microsoft.EventGrid/systemTopics/write",
                "Microsoft.EventGrid/systemTopics/eventSubscriptions/read",
                "Microsoft.EventGrid/systemTopics/eventSubscriptions/write",
            },
        )
        self.assertEqual([a for a, why in actions if not why], [])
        code = code_only(text)
        for key in ("notActions", "dataActions", "notDataActions"):
            self.assertRegex(code, rf"{key}:\s*\[\]")
        scopes = block(text, "assignableScopes: [")
        self.assertEqual(re.findall(r"\n\s*(\S[^\n]*)", scopes[:-1]), ["managementGroup().id"])
        assignments = [r for r in resources(code) if r[1] == "Microsoft.Authorization/roleAssignments"]
        self.assertEqual(len(assignments), 1, "assigned once, at the group")
        self.assertNotIn("scope:", assignments[0][2])

    def test_outside_the_group_it_may_attach_the_dead_letter_identity_and_subscribe_the_app_only(self):
        destination = string_array(DESTINATION_ROLE_FILE.read_text(), "actions")
        self.assertEqual(
            {a for a, _ in destination},
            {
                "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
                "Microsoft.Web/sites/functions/read",
                "Microsoft.Web/sites/functions/write",
            },
        )
        self.assertEqual([a for a, why in destination if not why], [])
        self.assertIn("subscription().id", block(DESTINATION_ROLE_FILE.read_text(), "assignableScopes: ["))
        code = code_only(WIRING_IDENTITIES_FILE.read_text())
        granted = [r for r in resources(code) if r[1] == "Microsoft.Authorization/roleAssignments" and "wiring.properties.principalId" in r[2]]
        self.assertEqual(
            sorted(re.search(r"scope: (\w+)", body).group(1) for _, _, body in granted),
            ["app", "deadLetter"],
        )
        for _, _, body in granted:
            self.assertIn("destinationRoleDefinitionName", body)
        self.assertNotRegex(code, r"\n\s+resource \w+ 'Microsoft.Authorization/roleDefinitions")

    def test_the_dead_letter_identity_writes_the_dead_letter_container_only(self):
        code = code_only(WIRING_IDENTITIES_FILE.read_text())
        granted = [r for r in resources(code) if r[1] == "Microsoft.Authorization/roleAssignments" and "deadLetter.properties.principalId" in r[2]]
        self.assertEqual(len(granted), 1)
        self.assertIn("scope: container", granted[0][2])
        self.assertIn("storageBlobDataContributor", granted[0][2])

    def test_main_bicep_wires_by_policy_only_with_management_groups_and_never_sets_both_scopes(self):
        main = code_only((INFRA / "main.bicep").read_text())
        self.assertIn("var discovers = !empty(managementGroups)", main)
        self.assertIn("HUBSPOKE_SUBSCRIPTIONS: discovers ? '' : join(scopeSubscriptions, ',')", main)
        self.assertIn("HUBSPOKE_MANAGEMENT_GROUPS: join(managementGroups, ',')", main)
        self.assertRegex(main, r"module eventDestinationRole 'modules/event-destination-role.bicep' = if \(discovers\)")
        self.assertRegex(main, r"module eventWiringIdentities 'modules/event-wiring-identities.bicep' = if \(discovers\)")


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


class HubLeases(unittest.TestCase):
    """One pass per hub across instances: the lease container, and the identity's right to it only."""

    def setUp(self):
        self.app = code_only((INFRA / "modules" / "app.bicep").read_text())

    def test_the_lease_container_exists_and_is_private(self):
        block = re.search(
            r"resource leaseContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@[^']+' = \{(.*?)\n\}",
            self.app,
            re.S,
        )
        self.assertIsNotNone(block)
        self.assertIn("parent: blobService", block.group(1))
        self.assertIn("name: leaseContainerName", block.group(1))
        self.assertIn("publicAccess: 'None'", block.group(1))
        self.assertIn("var leaseContainerName = 'hubspoke-leases'", self.app)

    def test_the_identity_may_use_the_leases_on_their_container_only(self):
        assignments = re.findall(
            r"resource (\w+) 'Microsoft.Authorization/roleAssignments@[^']+' = \{\n(.*?)\n\}",
            self.app,
            re.S,
        )
        contributor = [
            (name, body) for name, body in assignments if "roles.storageBlobDataContributor" in body
        ]
        self.assertEqual(len(contributor), 1, "one Storage Blob Data Contributor assignment")
        name, body = contributor[0]
        self.assertEqual(name, "leaseContributor")
        self.assertRegex(body, r"scope: leaseContainer\n")
        self.assertIn("principalId: identity.properties.principalId", body)
        self.assertIn("storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'", self.app)

    def test_the_app_waits_for_its_leases(self):
        depends = re.search(r"dependsOn: \[(.*?)\]", self.app, re.S)
        self.assertIsNotNone(depends)
        self.assertIn("leaseContributor", depends.group(1))
        self.assertIn("leaseContainer", depends.group(1))


class ParameterExample(unittest.TestCase):
    def test_the_example_sets_only_parameters_main_declares(self):
        main = code_only((INFRA / "main.bicep").read_text())
        declared = set(re.findall(r"^param\s+(\w+)\s", main, re.M))
        example = code_only((INFRA / "main.bicepparam").read_text())
        self.assertIn("using 'main.bicep'", example)
        used = set(re.findall(r"^param\s+(\w+)\s*=", example, re.M))
        self.assertTrue(used, "the example sets no parameter")
        self.assertEqual(used - declared, set())
        for required in ("hubs", "subscriptions", "managementGroups", "driftSchedule", "routeLimit", "dryRun"):
            self.assertIn(required, used)

    def test_the_management_group_example_sets_only_parameters_its_template_declares(self):
        entry = code_only(GROUP_ENTRY_FILE.read_text())
        declared = set(re.findall(r"^param\s+(\w+)\s", entry, re.M))
        example = code_only((INFRA / "management-group.bicepparam").read_text())
        self.assertIn("using 'management-group.bicep'", example)
        used = set(re.findall(r"^param\s+(\w+)\s*=", example, re.M))
        self.assertEqual(used - declared, set())
        self.assertEqual({"functionAppName", "identityPrincipalId", "eventWiring"} - used, set())
        wiring = block((INFRA / "main.bicep").read_text(), "output eventWiring object = discovers ? {")
        keys = set(re.findall(r"^\s+(\w+):", wiring, re.M))
        self.assertEqual(keys, set(re.findall(r"eventWiring\.(\w+)", entry)))


if __name__ == "__main__":
    unittest.main()
