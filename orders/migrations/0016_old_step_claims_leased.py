# By hand: a step still running under a claim from before steps had leases (no lease
# holder) is leased until its start plus the hard task time limit, as long as the old
# "host:pid" judgement let another host's claim live; nothing judges host and pid now.

from django.db import migrations

from engine.leases import old_claims_leased


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0015_due_row_leases'),
    ]

    operations = [
        old_claims_leased(
            'orders', 'Step', status='running', claimed_at='started_at', lease_holder=''
        ),
    ]
